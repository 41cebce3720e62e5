"""API keys that never travel as literals: `*.api_key_env` / `*.api_key_file`, and the refusals.

The Ray job table itself is checked in tests/ray/test_job_submit.py; here: the keys reach
the endpoints (the scripted server records the Authorization header it was sent), and a
literal key is refused wherever Ray would record it.
"""

import asyncio
import json

import pytest

from rollout.agent.episode import EpisodeSpec, check_episode
from rollout.core.config import api_key_of, check_secrets, load_config, to_dict
from rollout.core.failures import InvalidInput
from rollout.scripted import ScriptedServer
from rollout.sweep import submit
from rollout.sweep.config import SweepConfig
from tests.helpers import command, run_specs

AGENT_KEY = "sk-agent-FROM-ENV-0123456789"
USER_KEY = "sk-user-FROM-FILE-0123456789"


class KeyRecordingServer(ScriptedServer):
    """The scripted server, also keeping (role, Authorization header) of every completion request."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.auth: list[tuple[str, str]] = []

    def complete(self, body, headers):
        self.auth.append((headers.get("x-rollout-role", "agent"), headers.get("authorization", "")))
        return super().complete(body, headers)


def test_keys_from_a_variable_and_a_file_reach_the_endpoints_and_nothing_else(tmp_path, monkeypatch):
    monkeypatch.setenv("ROLLOUT_TEST_AGENT_KEY", AGENT_KEY)
    key_file = tmp_path / "user.key"
    key_file.write_text(USER_KEY + "\n")
    with KeyRecordingServer("oracle", record=False) as server:
        cfg = load_config(
            [
                f"llm.base_url={server.url}",
                "llm.model=a",
                "llm.max_retries=0",
                "llm.api_key_env=ROLLOUT_TEST_AGENT_KEY",
                f"user_llm.base_url={server.url}",
                "user_llm.model=u",
                f"user_llm.api_key_file={key_file}",
            ]
        )
        assert cfg.llm.api_key is None and cfg.user_llm.api_key is None  # the config holds names, not keys
        [result] = run_specs(cfg, [EpisodeSpec("airline", "12", solo=False)])
    assert result.reward == 1.0, result.failure
    assert {a for r, a in server.auth if r == "agent"} == {f"Bearer {AGENT_KEY}"}
    assert {a for r, a in server.auth if r == "user"} == {f"Bearer {USER_KEY}"}
    dumped = json.dumps([result.to_dict(), to_dict(cfg)])
    assert AGENT_KEY not in dumped and USER_KEY not in dumped
    assert set(cfg.secrets()) == {AGENT_KEY, USER_KEY}  # what the episode redacts


def test_the_variable_is_read_when_requests_are_made(monkeypatch):
    cfg = load_config(["llm.api_key_env=ROLLOUT_TEST_LATE_KEY"])  # unset now: fine, read later
    monkeypatch.setenv("ROLLOUT_TEST_LATE_KEY", "sk-late-0123456789")
    assert api_key_of(cfg.llm) == "sk-late-0123456789"


def test_standard_variables_are_the_fallback(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-std-agent-123456")
    monkeypatch.setenv("TAU2_USER_LLM_API_KEY", "sk-std-user-123456")
    monkeypatch.setenv("AENV_API_KEY", "aenv-std-123456")
    cfg = load_config([])
    assert cfg.llm.api_key is None  # not copied into the config
    assert (api_key_of(cfg.llm), api_key_of(cfg.user_llm), api_key_of(cfg.env.aenv)) == (
        "sk-std-agent-123456",
        "sk-std-user-123456",
        "aenv-std-123456",
    )


def test_a_named_variable_or_file_that_is_missing_is_invalid_input(tmp_path, monkeypatch):
    monkeypatch.delenv("ROLLOUT_TEST_MISSING", raising=False)
    with pytest.raises(InvalidInput, match="ROLLOUT_TEST_MISSING"):
        api_key_of(load_config(["user_llm.api_key_env=ROLLOUT_TEST_MISSING"]).user_llm)
    with pytest.raises(InvalidInput, match="nokey"):
        api_key_of(load_config([f"env.aenv.api_key_file={tmp_path / 'nokey'}"]).env.aenv)
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(InvalidInput, match="is empty"):
        api_key_of(load_config([f"llm.api_key_file={tmp_path / 'empty'}"]).llm)
    # in an episode: a classified invalid_input, never retried, before any request
    with ScriptedServer("oracle") as server:
        cfg = load_config([f"llm.base_url={server.url}", "llm.api_key_env=ROLLOUT_TEST_MISSING", "llm.model=a"])
        [result] = run_specs(cfg, [EpisodeSpec("telecom", load_ids("telecom")[0], solo=True)])
        assert result.failure.failure_class.value == "invalid_input" and "ROLLOUT_TEST_MISSING" in result.failure.message
        assert server.stats["agent"] == 0


def load_ids(domain):
    from rollout.env.domains import load_domain

    return load_domain(domain).task_ids("base")


def test_only_one_key_source_per_section():
    with pytest.raises(InvalidInput, match="set only one of llm.api_key, llm.api_key_env"):
        load_config(["llm.api_key=sk-abcdefgh", "llm.api_key_env=X"])


@pytest.mark.parametrize("override", ["llm.api_key=K", "user_llm.api_key=K", "env.aenv.api_key=K"])
def test_sweep_on_a_ray_cluster_refuses_a_literal_key(override, capsys):
    key = "sk-literal-SECRET-0123456789"
    item = override.replace("K", key)
    with pytest.raises(InvalidInput) as e:
        load_config(["ray.address=ray://head:10001", item], schema=SweepConfig)
    section = override.split(".api_key")[0]
    assert f"{section}.api_key_env=" in str(e.value) and key not in str(e.value)
    # the command: exit 2, one line, before Ray starts or anything is written
    assert command("sweep")(["ray.address=127.0.0.1:1", item, "output_dir=/nonexistent/never-written"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "api_key_env" in err and key not in err
    # without ray.address (a local sweep) a literal key stays allowed; key names always are
    load_config([item], schema=SweepConfig)
    check_secrets(load_config(["ray.address=auto", f"{section}.api_key_env=MY_KEY"], schema=SweepConfig))


@pytest.mark.parametrize(
    "overrides",
    [
        ["llm.api_key=K"],
        ["user_llm.api_key=K"],
        ["env.aenv.api_key=K"],
        ["llm={api_key: K, model: m}"],
        ["env.aenv={api_key: K}"],
        ["env={aenv: {api_key: K}}"],
        ["domains=[mock]", "user_llm={base_url: 'http://x/v1', api_key: K}"],
        ["ray.address=null", "llm.api_key=K"],
        ["ray.address=", "env.aenv.api_key=K"],
    ],
)
def test_submit_refuses_literal_keys_before_contacting_the_cluster(overrides, capsys):
    key = "sk-submit-SECRET-0123456789"
    argv = ["address=http://127.0.0.1:9", "--", *[o.replace("K", key) for o in overrides]]
    assert command("submit")(argv) == 2  # port 9: contacting it would fail differently
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "api_key_env=" in err and key not in out + err


def test_submit_passes_key_names_and_no_key_in_the_job(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-in-my-shell-0123456789")
    entrypoint, runtime_env = submit.build_job(
        [
            "llm.api_key_env=MY_KEY",
            "user_llm.api_key_file=/etc/k",
            "llm.api_key=null",
            "llm.base_url=http://gpu/v1",
            "user_llm.base_url=http://sim/v1",
        ]
    )
    assert "llm.api_key_env=MY_KEY" in entrypoint and "user_llm.api_key_file=/etc/k" in entrypoint
    assert "ray.address=auto" in entrypoint
    assert "sk-in-my-shell" not in json.dumps([entrypoint, runtime_env])
    assert not any("KEY" in k for k in runtime_env["env_vars"])


def test_redaction_covers_keys_read_from_variables(monkeypatch):
    monkeypatch.setenv("ROLLOUT_TEST_AGENT_KEY", AGENT_KEY)
    with KeyRecordingServer("oracle", record=False) as server:
        server.set_faults(mode="http_401", count=-1, role="agent")  # the error body echoes the key
        cfg = load_config(
            [f"llm.base_url={server.url}", "llm.model=a", "llm.max_retries=0", "llm.api_key_env=ROLLOUT_TEST_AGENT_KEY"]
        )
        [result] = asyncio.run(_one(cfg))
    assert result.failure.failure_class.value == "model_error"
    assert "Incorrect API key provided: ***" in result.failure.message  # the key was sent, and redacted
    assert AGENT_KEY not in json.dumps(result.to_dict())


async def _one(cfg):
    from rollout.agent.runner import EpisodeRunner

    async with EpisodeRunner(cfg) as runner:
        return [await runner.run(check_episode(EpisodeSpec("telecom", load_ids("telecom")[0], solo=True), cfg))]
