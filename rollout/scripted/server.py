"""A scripted OpenAI-compatible chat-completions server on loopback: the test double for the LLM.

It answers `POST /v1/chat/completions` for both the agent (requests tagged
`X-Rollout-Role: agent`, played by the oracle or noop policy) and the user simulator
(`X-Rollout-Role: user`), and `GET /v1/models`. Everything else in the rollout path is
real. Switchable at run time through `POST /admin/faults` (or `ScriptedServer.set_faults`):
per-completion latency, scripts the agent replays on given tasks (`POST /admin/scripts`),
and a number of faulty answers (HTTP 500, a hang, malformed
tool-call JSON, an empty message) for the agent, the user or both. `GET /admin/stats`
counts completions by role.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

from rollout.scripted.policies import agent_reply, replay_reply, tool_call, user_reply

FAULT_MODES = ("none", "http_500", "http_401", "hang", "malformed_tool_json", "empty")


@dataclass
class Faults:
    """What the server does wrong, and for how many completions (-1: until changed)."""

    mode: str = "none"
    count: int = 0
    role: str = "any"  # agent | user | any
    latency_s: float = 0.0  # added to every completion
    hang_s: float = 3600.0

    def __post_init__(self):
        if self.mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode '{self.mode}'; valid: {', '.join(FAULT_MODES)}")
        if self.role not in ("agent", "user", "any"):
            raise ValueError(f"unknown fault role '{self.role}'; valid: agent, user, any")


class ScriptedServer:
    """The server; use as a context manager or call start()/stop()."""

    def __init__(self, agent_policy: str = "oracle", *, host: str = "127.0.0.1", port: int = 0,
                 faults: Optional[Faults] = None, record: bool = True):
        if agent_policy not in ("oracle", "noop"):
            raise ValueError(f"unknown scripted policy '{agent_policy}'; valid: oracle, noop")
        self.agent_policy = agent_policy
        self.faults = faults or Faults()
        self.record = record
        self.requests: list[dict] = []
        self.scripts: dict[tuple[str, str], list[dict]] = {}
        self.stats = {"agent": 0, "user": 0, "faults": 0}
        self._lock = threading.Lock()
        self._httpd = _Server((host, port), _handler_for(self))
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> ScriptedServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="scripted-llm", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def set_faults(self, **kwargs) -> None:
        with self._lock:
            self.faults = Faults(**kwargs)

    def set_script(self, domain: str, task_id: str, actions: list[dict]) -> None:
        """Make the agent replay `actions` on this task (see policies.replay_reply).

        domain = task_id = "" sets the script for requests without X-Rollout-* headers.
        """
        with self._lock:
            self.scripts[(domain, str(task_id))] = list(actions)

    def _take_fault(self, role: str) -> tuple[str, float, float]:
        """(mode, latency, hang) for one completion, consuming one faulty answer if due."""
        with self._lock:
            f = self.faults
            self.stats[role] = self.stats.get(role, 0) + 1
            mode = "none"
            if f.mode != "none" and f.count != 0 and f.role in ("any", role):
                mode = f.mode
                self.stats["faults"] += 1
                if f.count > 0:
                    f.count -= 1
            return mode, f.latency_s, f.hang_s

    def complete(self, body: dict, headers: dict[str, str]) -> tuple[int, dict]:
        """(HTTP status, JSON body) for one chat-completions request."""
        role = headers.get("x-rollout-role") or "agent"
        if self.record:
            with self._lock:
                self.requests.append({"headers": {k: v for k, v in headers.items() if k != "authorization"}, "body": body})
        mode, latency, hang = self._take_fault(role)
        if latency:
            time.sleep(latency)
        if mode == "http_500":
            return 500, {"error": {"message": "scripted fault: internal server error", "type": "server_error"}}
        if mode == "http_401":  # like OpenAI's, the error body quotes the key it was given
            key = headers.get("authorization", "").removeprefix("Bearer ")
            return 401, {"error": {"message": f"Incorrect API key provided: {key}", "type": "invalid_request_error"}}
        if mode == "hang":
            time.sleep(hang)
        if mode == "empty":
            message = {"role": "assistant", "content": ""}
        elif role == "user":
            message = user_reply(body, headers)
        else:
            key = (headers.get("x-rollout-domain", ""), headers.get("x-rollout-task-id", ""))
            script = self.scripts.get(key, self.scripts.get(("", "")))  # ("", ""): untagged requests
            message = replay_reply(script, body) if script is not None else agent_reply(self.agent_policy, body, headers)
        if mode == "malformed_tool_json":
            name = (body.get("tools") or [{"function": {"name": "unknown"}}])[0]["function"]["name"]
            message = tool_call(f"call_bad_{len(body.get('messages', []))}", name, '{"broken": ')
        finish = "tool_calls" if message.get("tool_calls") else "stop"
        return 200, {
            "id": f"chatcmpl-scripted-{self.stats['agent'] + self.stats['user']}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "scripted"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the default backlog of 5 resets connections under load

    def handle_error(self, request, client_address):  # clients that time out close their socket
        pass


class JsonHandler(BaseHTTPRequestHandler):
    """A keep-alive HTTP/1.1 handler that answers JSON; quiet."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # otherwise every keep-alive request waits on delayed ACK

    def log_message(self, *args):
        pass

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _handler_for(server: ScriptedServer):
    class Handler(JsonHandler):

        def _body(self) -> dict:
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length) or b"{}")

        def do_GET(self):
            if self.path.rstrip("/").endswith("/models"):
                self._send(200, {"object": "list", "data": [{"id": f"scripted-{server.agent_policy}", "object": "model"}]})
            elif self.path == "/admin/stats":
                with server._lock:
                    self._send(200, {**server.stats, "faults_config": asdict(server.faults)})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self):
            try:
                body = self._body()
            except ValueError:
                self._send(400, {"error": {"message": "body is not JSON"}})
                return
            if self.path.rstrip("/").endswith("/chat/completions"):
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, payload = server.complete(body, headers)
                self._send(status, payload)
            elif self.path == "/admin/scripts":
                server.set_script(body["domain"], body["task_id"], body["actions"])
                self._send(200, {"ok": True})
            elif self.path == "/admin/faults":
                try:
                    server.set_faults(**body)
                except (TypeError, ValueError) as e:
                    self._send(400, {"error": {"message": str(e)}})
                    return
                self._send(200, {"ok": True})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

    return Handler
