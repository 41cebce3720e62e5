"""AEnvironment's own tau2_rl example agent, unchanged (tests/vendor/), against this project's env module.

The server runs as the README's recipe says, on a loopback address other than 127.0.0.1
(`--host 127.0.0.x`), and the example finds it through DUMMY_INSTANCE_IP. The SDK's
`initialize()` polls GET /health, which aenv's built-in handler answers by probing
`localhost:8081`; the env module points that probe at the server's own address, so the
example starts at once instead of waiting 300 s and returning 0.0.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from rollout.core.process_env import child_env
from rollout.env.aenv.servers import ENV_DIR
from rollout.env.domains import load_domain
from tests.aenv_api_double import wait_until

VENDORED = Path(__file__).resolve().parents[1] / "vendor" / "aenvironment_tau2_rl" / "agent.py.upstream"
RUN = (
    "import asyncio, json, sys; sys.path.insert(0, sys.argv[1]); import agent; "
    "print('REWARD=' + json.dumps(asyncio.run(agent.run_agent_return_reward("
    "{'domain': sys.argv[2], 'task_id': sys.argv[3]}))))"
)


def free_loopback_host() -> str:
    for x in range(50, 250):
        host = f"127.0.0.{x}"
        with socket.socket() as s:
            try:
                s.bind((host, 8081))
                return host
            except OSError:
                continue
    raise RuntimeError("no free 127.0.0.x:8081")


def test_upstream_example_unchanged_on_127_0_0_x(server, tmp_path):
    assets = load_domain("telecom")
    task_id = min(assets.task_ids("base"), key=lambda t: len(assets.task(t).evaluation_criteria.actions))
    gold = [{"tool": a.name, "arguments": a.arguments} for a in assets.task(task_id).evaluation_criteria.actions]
    server.set_script("", "", gold)  # the example sends no X-Rollout-* headers
    shutil.copyfile(VENDORED, tmp_path / "agent.py")
    host = free_loopback_host()
    env = {
        **os.environ,
        "TAU2_DOMAIN": "telecom",
        "TAU2_TASK_ID": task_id,
        "TAU2_SOLO_MODE": "true",
        "TAU2_USER_LLM_API_KEY": "sk-never-echoed-123456",
        **child_env(),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "aenv.main", str(ENV_DIR), "--host", host, "--port", "8081"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:

        def healthy() -> bool:
            import urllib.request

            try:
                body = json.loads(urllib.request.urlopen(f"http://{host}:8081/health", timeout=3).read())
            except OSError:
                return False
            return body["data"]["status"] == "success"

        assert wait_until(healthy, 120), "GET /health on 127.0.0.x never reports success"
        agent_env = {k: v for k, v in os.environ.items() if not k.startswith("TAU2_")}
        agent_env.update({"DUMMY_INSTANCE_IP": host, "OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "k", **child_env()})
        started = time.monotonic()
        p = subprocess.run(
            [sys.executable, "-c", RUN, str(tmp_path), "telecom", task_id],
            env=agent_env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        elapsed = time.monotonic() - started
        assert p.returncode == 0, p.stderr[-3000:]
        reward = [line for line in p.stdout.splitlines() if line.startswith("REWARD=")]
        assert reward == ["REWARD=1.0"], p.stdout[-3000:]
        assert "Error running agent" not in p.stdout
        assert elapsed < 200  # not the SDK's 300 s health wait
        assert "sk-never-echoed" not in p.stdout + p.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=20)
