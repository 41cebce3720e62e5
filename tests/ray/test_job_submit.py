"""`ray start --head` on loopback, then `launch.submit` runs a small sweep as a Ray job."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SECRET = "sk-job-SECRET-1234567890"


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


def test_ray_job_submit_runs_a_sweep(tmp_path):
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled",
           "RAY_USAGE_STATS_ENABLED": "0", "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    env.pop("RAY_ADDRESS", None)  # as with an activated virtualenv: the job's `python` is this one
    dashboard = free_port()
    ray_bin = str(Path(sys.executable).parent / "ray")
    # Every port of its own: the test session's in-process Ray may hold the defaults (e.g.
    # the dashboard agent's 52365), and a second head would then have no job agent.
    ports = [f"--{name}={free_port()}" for name in ("port", "ray-client-server-port", "dashboard-agent-listen-port",
                                                    "dashboard-agent-grpc-port", "runtime-env-agent-port",
                                                    "metrics-export-port", "node-manager-port", "object-manager-port")]
    head = subprocess.Popen([ray_bin, "start", "--head", *ports, f"--dashboard-port={dashboard}",
                             "--dashboard-host=127.0.0.1", "--include-dashboard=true", "--num-cpus=2",
                             "--disable-usage-stats", "--block"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{dashboard}/api/version", 120)
        out = tmp_path / "job-run"
        p = subprocess.run([sys.executable, "-m", "rollout", "submit", "--address", f"http://127.0.0.1:{dashboard}", "--",
                            "domains=[mock,telecom]", "max_tasks=2", f"output_dir={out}", f"llm.api_key={SECRET}"],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
        assert "SUCCEEDED" in p.stdout and "ray.address=auto" in p.stdout
        assert SECRET not in p.stdout + p.stderr  # moved into the job's environment, not its entrypoint
        recs = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
        assert len(recs) == 4 and all(r["status"] == "ok" and r["reward"] == 1.0 for r in recs)
        assert json.loads((out / "summary.json").read_text())["all"]["episodes"] == 4
        assert SECRET not in (out / "config.yaml").read_text()
    finally:
        head.send_signal(signal.SIGINT)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
