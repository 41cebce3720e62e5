"""A small, clearly named double of the AEnvironment api-service (the real one needs Kubernetes).

Control plane on <host>:8080: POST /env-instance starts an env "pod" (tests/aenv_pod.py:
this project's env module under aenv's MCP server, on its own loopback address, with the
request's environment_variables), GET /env-instance/{id} reports Pending until the pod
serves, then Running; DELETE /env-instance/{id} stops it. Data plane on <host>:8081: a
reverse proxy to the URL in the AEnvCore-MCPProxy-URL header, like the real gateway.
`created`, `deleted` and `alive()` let tests check that every instance is released.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from rollout.core.process_env import child_env
from rollout.env.aenv.servers import ENV_DIR
from rollout.scripted.server import JsonHandler

POD = Path(__file__).with_name("aenv_pod.py")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def handle_error(self, request, client_address):
        pass


class AenvApiServiceDouble:
    def __init__(self, host: str = "127.0.97.1", pod_net: str = "127.0.96"):
        self.host = host
        self._pod_net = pod_net
        self._ids = itertools.count(2)
        self.pods: dict[str, dict] = {}
        self.created: list[str] = []
        self.deleted: list[str] = []
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._control = _Server((host, 8080), self._control_handler())
        self._gateway = _Server((host, 8081), self._gateway_handler())

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def __enter__(self):
        for s in (self._control, self._gateway):
            threading.Thread(target=s.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        for pod_id in list(self.pods):
            self._stop(pod_id)
        for s in (self._control, self._gateway):
            s.shutdown()
            s.server_close()

    def alive(self) -> list[str]:
        return [i for i, p in self.pods.items() if p["process"].poll() is None]

    # ---- pods ---------------------------------------------------------------------------
    def _start(self, body: dict) -> dict:
        n = next(self._ids)
        pod_id = f"tau2-pod-{n}"
        ip = f"{self._pod_net}.{n}"
        env = {**os.environ, **child_env(body.get("environment_variables") or {})}
        process = subprocess.Popen(
            [sys.executable, str(POD), str(ENV_DIR), ip],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        now = datetime.now(UTC).isoformat()
        with self._lock:
            self.pods[pod_id] = {"process": process, "ip": ip, "created_at": now, "env": body}
            self.created.append(pod_id)
        return self._instance(pod_id)

    def _instance(self, pod_id: str) -> dict:
        pod = self.pods[pod_id]
        status = "Pending"
        if pod["process"].poll() is not None:
            status = "Failed"
        else:
            try:
                urllib.request.urlopen(f"http://{pod['ip']}:8081/functions/list", timeout=1).read()
                status = "Running"
            except OSError:
                pass
        return {
            "id": pod_id,
            "status": status,
            "ip": pod["ip"],
            "created_at": pod["created_at"],
            "updated_at": datetime.now(UTC).isoformat(),
            "ttl": pod["env"].get("ttl", ""),
        }

    def _stop(self, pod_id: str) -> None:
        pod = self.pods.get(pod_id)
        if pod and pod["process"].poll() is None:
            os.killpg(pod["process"].pid, signal.SIGTERM)
            try:
                pod["process"].wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(pod["process"].pid, signal.SIGKILL)

    # ---- HTTP ---------------------------------------------------------------------------
    def _control_handler(self):
        double = self

        class Control(JsonHandler):
            _reply = JsonHandler._send

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                double.requests.append(
                    {"method": "POST", "path": self.path, "body": body, "authorization": self.headers.get("Authorization")}
                )
                if self.path != "/env-instance":
                    return self._reply(404, {"success": False, "message": "no route"})
                self._reply(200, {"success": True, "code": 0, "data": double._start(body)})

            def do_GET(self):
                pod_id = self.path.rsplit("/", 1)[-1]
                if pod_id not in double.pods:
                    return self._reply(404, {"success": False, "message": f"no instance {pod_id}"})
                self._reply(200, {"success": True, "code": 0, "data": double._instance(pod_id)})

            def do_DELETE(self):
                pod_id = self.path.rsplit("/", 1)[-1]
                double.requests.append({"method": "DELETE", "path": self.path})
                if pod_id not in double.pods:
                    return self._reply(404, {"success": False, "message": f"no instance {pod_id}"})
                double._stop(pod_id)
                with double._lock:
                    double.deleted.append(pod_id)
                self._reply(200, {"success": True, "code": 0, "data": None})

        return Control

    def _gateway_handler(self):
        class Gateway(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _proxy(self, method: str):
                target = self.headers.get("AEnvCore-MCPProxy-URL")
                if not target:
                    return self._raw(400, b'{"error": "missing AEnvCore-MCPProxy-URL"}', "application/json")
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else None
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "content-length", "connection", "aenvcore-mcpproxy-url")
                }
                request = urllib.request.Request(target.rstrip("/") + self.path, data=data, method=method, headers=headers)
                try:
                    with urllib.request.urlopen(request, timeout=600) as resp:
                        self._raw(resp.status, resp.read(), resp.headers.get("Content-Type", "application/json"))
                except urllib.error.HTTPError as e:
                    self._raw(e.code, e.read(), e.headers.get("Content-Type", "application/json"))
                except OSError as e:
                    self._raw(502, json.dumps({"error": str(e)}).encode(), "application/json")

            def _raw(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                self._proxy("GET")

            def do_POST(self):
                self._proxy("POST")

        return Gateway


def wait_until(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()
