"""The aenv backend: the user model is resolved as on the local backend; local servers leave no files behind."""

import json
import os
import signal
import subprocess
import sys
import textwrap

from rollout.agent.episode import EpisodeSpec
from rollout.core.config import load_config
from rollout.scripted.endpoints import AGENT_MODEL
from tests.aenv_api_double import wait_until
from tests.helpers import run_specs


def _cfg(server_url: str, user_url: str, backend: str):
    return load_config(
        [
            f"llm.base_url={server_url}",
            f"llm.model={AGENT_MODEL}",
            "llm.max_retries=0",
            f"user_llm.base_url={user_url}",
            "user_llm.max_retries=0",
            f"env.backend={backend}",
        ]
    )


def test_unset_user_model_is_asked_from_the_endpoint_on_both_backends(server):
    """user_llm.model unset: the first model of GET /v1/models, on the local and the aenv backend."""
    specs = [EpisodeSpec("airline", "12", solo=False), EpisodeSpec("mock", "create_task_1", solo=False)]
    for backend in ("local", "aenv"):
        server.requests.clear()
        results = run_specs(_cfg(server.url, server.url, backend), specs, concurrency=2)
        assert [r.reward for r in results] == [1.0, 1.0], (backend, [r.failure for r in results])
        user_models = {r["body"]["model"] for r in server.requests if r["headers"].get("x-rollout-role") == "user"}
        assert user_models == {"scripted-oracle"}, (backend, user_models)  # what the scripted server lists


def test_an_unreachable_user_endpoint_is_a_user_sim_error_not_an_env_error(server):
    for backend in ("local", "aenv"):
        [result] = run_specs(_cfg(server.url, "http://127.0.0.1:9/v1", backend), [EpisodeSpec("airline", "12", solo=False)])
        assert result.reward is None and result.failure.failure_class.value == "user_sim_error", (backend, result.failure)
        assert "listing models failed" in result.failure.message


CHILD = textwrap.dedent("""
    import asyncio, json, os, sys, tempfile
    from rollout.env.aenv.servers import LocalAenvServer

    async def main():
        server = await LocalAenvServer.start({})
        print(json.dumps({"pid": server.process.pid, "host": server.host, "tmp": tempfile.gettempdir(),
                          "files": os.listdir(tempfile.gettempdir()), "tail": server.log_tail()}), flush=True)
        await asyncio.sleep(600)

    asyncio.run(main())
""")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is gone for our purposes
        return f.read().split(")")[-1].split()[0] != "Z"


def test_killed_owner_leaves_no_server_and_no_log_file(tmp_path):
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    owner = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        env={**os.environ, "TMPDIR": str(private_tmp)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        info = json.loads(owner.stdout.readline() or "null" + owner.stderr.read())
        assert info["tmp"] == str(private_tmp)
        assert info["files"] == []  # the log's name is gone while the server runs
        assert info["tail"]  # ... yet its output is readable for error messages
        assert _alive(info["pid"])
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=30)
    assert wait_until(lambda: not _alive(info["pid"]), 30), "the aenv server outlived its owner"
    assert os.listdir(private_tmp) == []
