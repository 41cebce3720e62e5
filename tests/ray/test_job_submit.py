"""`ray start --head` on loopback, then `tau2-rollout submit` runs a small sweep as a Ray job.

The API key travels only as the name of a variable (`llm.api_key_env=...`) that the head
node was started with: the job authenticates (the endpoint sees the key), and neither the
job table (dashboard /api/jobs/) nor anything in the session's directory (logs, runtime_env
agent logs) holds the key.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from rollout.scripted import ScriptedServer
from rollout.scripted.endpoints import AGENT_MODEL, USER_MODEL

REPO = Path(__file__).resolve().parents[2]
SECRET = f"sk-job-{uuid.uuid4().hex}"  # made at run time: the uploaded working dir holds this file


class KeyRecordingServer(ScriptedServer):
    """The scripted server, also keeping the Authorization header of every completion request."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.auth: list[str] = []

    def complete(self, body, headers):
        self.auth.append(headers.get("authorization", ""))
        return super().complete(body, headers)


def files_containing(root: Path, needle: bytes) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink() and needle in path.read_bytes():
                hits.append(str(path))
        except OSError:
            pass
    return hits


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(1)
    raise TimeoutError(url)


def test_ray_job_submit_runs_a_sweep_and_ray_records_no_key(tmp_path):
    env = {
        **os.environ,
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    env.pop("RAY_ADDRESS", None)  # as with an activated virtualenv: the job's `python` is this one
    head_env = {**env, "ROLLOUT_JOB_KEY": SECRET}  # the node is started with the key; the job names it
    dashboard = free_port()
    ray_bin = str(Path(sys.executable).parent / "ray")
    ray_tmp = Path(tempfile.mkdtemp(prefix="rj", dir="/tmp"))  # short: Ray's socket paths have a length limit
    # Every port of its own: the test session's in-process Ray may hold the defaults (e.g.
    # the dashboard agent's 52365), and a second head would then have no job agent.
    ports = [
        f"--{name}={free_port()}"
        for name in (
            "port",
            "ray-client-server-port",
            "dashboard-agent-listen-port",
            "dashboard-agent-grpc-port",
            "runtime-env-agent-port",
            "metrics-export-port",
            "node-manager-port",
            "object-manager-port",
        )
    ]
    head = subprocess.Popen(
        [
            ray_bin,
            "start",
            "--head",
            *ports,
            f"--dashboard-port={dashboard}",
            "--dashboard-host=127.0.0.1",
            "--include-dashboard=true",
            "--num-cpus=2",
            f"--temp-dir={ray_tmp}",
            "--disable-usage-stats",
            "--block",
        ],
        env=head_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with KeyRecordingServer("oracle", record=False) as server:
            wait_http(f"http://127.0.0.1:{dashboard}/api/version", 120)
            out = tmp_path / "job-run"
            p = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "rollout",
                    "submit",
                    f"address=http://127.0.0.1:{dashboard}",
                    "--",
                    "domains=[mock,telecom]",
                    "max_tasks=2",
                    f"output_dir={out}",
                    f"llm.base_url={server.url}",
                    f"llm.model={AGENT_MODEL}",
                    "llm.api_key_env=ROLLOUT_JOB_KEY",
                    f"user_llm.base_url={server.url}",
                    f"user_llm.model={USER_MODEL}",
                    "user_llm.api_key_env=ROLLOUT_JOB_KEY",
                    "progress=false",
                ],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
            assert "SUCCEEDED" in p.stdout and "ray.address=auto" in p.stdout
            # the job authenticated with the key it read from the node's environment
            assert server.auth and set(server.auth) == {f"Bearer {SECRET}"}
        recs = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
        assert len(recs) == 4 and all(r["status"] == "ok" and r["reward"] == 1.0 for r in recs)
        assert json.loads((out / "summary.json").read_text())["all"]["episodes"] == 4
        # nothing Ray records about the job holds the key: the job table, the session's files
        jobs = urllib.request.urlopen(f"http://127.0.0.1:{dashboard}/api/jobs/", timeout=10).read().decode()
        assert "ROLLOUT_JOB_KEY" in jobs and SECRET not in jobs  # the entrypoint names the variable only
        sessions = list(ray_tmp.glob("session_*"))
        assert sessions and any(ray_tmp.rglob("runtime_env_agent*.log"))
        assert files_containing(ray_tmp, SECRET.encode()) == []
        assert SECRET not in p.stdout + p.stderr + json.dumps(recs)
        assert files_containing(out, SECRET.encode()) == []
    finally:
        head.send_signal(signal.SIGINT)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
        shutil.rmtree(ray_tmp, ignore_errors=True)
