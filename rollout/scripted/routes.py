"""The scripted server's HTTP layer: a quiet keep-alive JSON handler and the routes of
ScriptedServer (server.py), which it calls; no logic of its own."""

from __future__ import annotations

import json
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


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

    def _send(self, status: int, payload) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def handler_for(server):
    """The request handler class serving `server` (a ScriptedServer)."""

    class Handler(JsonHandler):
        def _body(self) -> dict:
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length) or b"{}")

        def do_GET(self):
            if self.path.rstrip("/").endswith("/models"):
                # vLLM's model card names the served context length (max_model_len)
                card = {"id": f"scripted-{server.agent_policy}", "object": "model", "max_model_len": server.max_model_len}
                self._send(200, {"object": "list", "data": [card]})
            elif self.path == "/admin/stats":
                with server._lock:
                    self._send(200, {**server.stats, "faults_config": asdict(server.faults)})
            elif self.path == "/weights":
                self._send(200, {"version": server.weights.version, "updates": server.weights.updates})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self):
            path = self.path.rstrip("/")
            endpoint = (
                "chat"
                if path.endswith("/chat/completions")
                else "completions"
                if path.endswith("/v1/completions")
                else "generate"
                if path == "/generate"
                else None
            )
            if endpoint is None:
                self._post(None)
                return
            with server.weights.flight():  # in the engine from the moment it arrives (engine_weights.py)
                self._post(endpoint)

        def _post(self, endpoint):
            try:
                body = self._body()
            except ValueError:
                self._send(400, {"error": {"message": "body is not JSON"}})
                return
            if endpoint is not None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    if endpoint == "chat":
                        status, payload = server.complete(body, headers)
                    else:
                        status, payload = server.complete_tokens(endpoint, body, headers)
                except Exception as e:  # a bug of the double must fail the request, not hang the client
                    status, payload = 500, {"error": {"message": f"scripted server error: {type(e).__name__}: {e}"}}
                self._send(status, payload)
            elif self.path == "/update_weights":  # {"version": int}
                try:
                    server.update_weights(body.get("version"))
                except ValueError as e:
                    self._send(400, {"error": {"message": str(e)}})
                    return
                self._send(200, {"ok": True, "version": server.weights.version})
            elif self.path == "/admin/token_latency":  # {"ms": float}
                try:
                    ms = body.get("ms")
                    server.set_token_latency(ms / 1000.0 if isinstance(ms, (int, float)) and not isinstance(ms, bool) else ms)
                except ValueError as e:
                    self._send(400, {"error": {"message": str(e)}})
                    return
                self._send(200, {"ok": True})
            elif self.path == "/admin/scripts":
                server.set_script(body["domain"], body["task_id"], body["actions"])
                self._send(200, {"ok": True})
            elif self.path == "/admin/expect":  # {"domain", "task_id"} | {"clear": true}
                if body.get("clear"):
                    server.clear_expectations()
                else:
                    server.expect(body["domain"], body["task_id"])
                self._send(200, {"ok": True})
            elif self.path == "/admin/inject":  # {"role", "message"}
                try:
                    server.inject(body.get("role", "any"), body["message"])
                except (KeyError, ValueError) as e:
                    self._send(400, {"error": {"message": f"{type(e).__name__}: {e}"}})
                    return
                self._send(200, {"ok": True})
            elif self.path == "/admin/tokens":  # {"drift": mode | null, "old_vllm": bool}
                try:
                    server.set_tokens(body.get("drift"), body.get("old_vllm", False))
                except ValueError as e:
                    self._send(400, {"error": {"message": str(e)}})
                    return
                self._send(200, {"ok": True})
            elif self.path == "/admin/style":  # {"reply_style"}
                try:
                    server.set_reply_style(body.get("reply_style", ""))
                except ValueError as e:
                    self._send(400, {"error": {"message": str(e)}})
                    return
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
