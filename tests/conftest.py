"""Test settings: loopback only, no tracing, no usage stats, no developer endpoints leaking in."""

import os

for _var in (
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "OPENAI_MODEL",
    "TAU2_USER_LLM",
    "TAU2_USER_LLM_API_BASE",
    "TAU2_USER_LLM_API_KEY",
    "AENV_SYSTEM_URL",
):
    os.environ.pop(_var, None)
from rollout.core.process_env import apply_defaults  # noqa: E402

apply_defaults()  # the test process is an entry point
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_AUTH_MODE"] = "disabled"
os.environ["ROLLOUT_TEST_KEY"] = "sk-test-key-by-name-42"  # a key named by tests (api_key_env): Ray's workers inherit it

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
def _ray_session():
    """Shuts down, at the end of the session, the local Ray `ray_cluster` started."""
    yield
    import ray

    from rollout.core.process_env import ray_shutdown

    if ray.is_initialized():
        ray_shutdown()


@pytest.fixture(scope="module")
def ray_cluster(_ray_session):
    """A local Ray of 2 CPUs for the module, started when this process is connected to none
    (an earlier module's is kept; tests/unit/conftest.py shuts it down before unit tests)."""
    import ray

    from rollout.core.process_env import child_env

    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            object_store_memory=256 * 2**20,
            runtime_env={"env_vars": child_env()},
            log_to_driver=False,
        )
    yield ray.get_runtime_context().gcs_address


_LAYER_MARKS = {"unit": "unit", "integration": "integration", "ray": "ray"}


def pytest_collection_modifyitems(config, items):
    """Mark each test by its directory (tests/unit, tests/integration, tests/ray), and `ray`
    for any test that uses a Ray cluster fixture, so `-m unit` runs the fast ones alone."""
    for item in items:
        layer = item.path.parent.name
        if layer in _LAYER_MARKS:
            item.add_marker(getattr(pytest.mark, _LAYER_MARKS[layer]))
        if "ray_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.ray)
