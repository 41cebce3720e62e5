"""Test settings: loopback only, no tracing, no usage stats, no developer endpoints leaking in."""

import os

for _var in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_MODEL", "TAU2_USER_LLM", "TAU2_USER_LLM_API_BASE",
             "TAU2_USER_LLM_API_KEY", "AENV_SYSTEM_URL"):
    os.environ.pop(_var, None)
os.environ["OPENAI_AGENTS_DISABLE_TRACING"] = "1"
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_AUTH_MODE"] = "disabled"

import pytest  # noqa: E402

from rollout.scripted import ScriptedServer  # noqa: E402


@pytest.fixture(scope="session")
def oracle_server():
    """A shared oracle server. Tests that change faults or scripts use their own server."""
    with ScriptedServer("oracle", record=False) as server:
        yield server


@pytest.fixture(scope="session")
def noop_server():
    with ScriptedServer("noop", record=False) as server:
        yield server


@pytest.fixture
def server():
    """A private oracle server with a request log, for tests that inspect or perturb it."""
    with ScriptedServer("oracle") as s:
        yield s


@pytest.fixture(scope="session")
def ray_cluster():
    import ray

    from rollout.workers import WORKER_ENV

    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=256 * 2**20,
             runtime_env={"env_vars": dict(WORKER_ENV)}, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
