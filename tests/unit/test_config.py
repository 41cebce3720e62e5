"""Config: the package's YAML defaults, presets, overrides and clear errors."""

import pytest

from rollout.core.config import load_config, to_dict
from rollout.core.failures import InvalidInput


def test_defaults_and_presets():
    cfg = load_config()
    assert cfg.sampling.preset == "train" and cfg.sampling.temperature == 1.0
    assert cfg.episode.max_steps == 200 and cfg.episode.max_errors == 10
    assert load_config(["sampling=eval"]).sampling.temperature == 0.0
    assert load_config({"sampling": "eval", "episode": {"timeout_s": 5}}).episode.timeout_s == 5.0


def test_environment_variables_fill_endpoints(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    monkeypatch.setenv("TAU2_USER_LLM", "openai/user-model")
    cfg = load_config()
    assert cfg.llm.base_url == "http://127.0.0.1:1/v1" and cfg.user_llm.model == "openai/user-model"
    assert load_config(["llm.base_url=http://127.0.0.1:2/v1"]).llm.base_url == "http://127.0.0.1:2/v1"


@pytest.mark.parametrize(
    "overrides,message",
    [
        (
            ["episode.max_stepz=3"],
            "unknown key 'episode.max_stepz' (did you mean 'episode.max_steps'?); valid keys under episode: ",
        ),
        (["llm.modle=x"], "unknown key 'llm.modle' (did you mean 'llm.model'?)"),
        (["episode.max_steps=three"], "invalid value for config key 'episode.max_steps'"),
        (["sampling=hot"], "unknown sampling preset 'hot'; valid presets: eval, train"),
        (["llm.scripted=gpt"], "llm.scripted='gpt' is not one of oracle, noop"),
        (["env.backend=docker"], "env.backend='docker' is not one of local, aenv"),
        (["episode.timeout_s=-1"], "episode.timeout_s=-1.0: valid: a number > 0"),
        (["episode.max_steps=0"], "episode.max_steps=0: valid: an integer >= 1"),
        (["env.max_sessions=0"], "env.max_sessions=0: valid: an integer >= 1, or null"),
        (["--domain"], "not of the form key=value"),
    ],
)
def test_bad_overrides_name_the_problem(overrides, message):
    with pytest.raises(InvalidInput) as e:
        load_config(overrides)
    assert message in str(e.value)


def test_to_dict_round_trips_without_secrets():
    cfg = load_config(["llm.api_key=sk-abcdefghijkl", "sampling.extra_body={top_k: 20}"])
    d = to_dict(cfg)
    assert d["llm"]["api_key"] == "***" and d["sampling"]["extra_body"] == {"top_k": 20}
    assert to_dict(cfg, redact_secrets=False)["llm"]["api_key"] == "sk-abcdefghijkl"


def test_the_example_sweep_config_loads_and_overrides_win():
    from pathlib import Path

    from rollout.sweep.config import SweepConfig
    from rollout.sweep.run import prepare

    example = Path(__file__).resolve().parents[2] / "conf" / "sweep.yaml"
    cfg = load_config(files=[example], schema=SweepConfig)
    assert cfg.domains == ["airline", "retail", "telecom"] and cfg.num_samples == 4
    assert cfg.sampling.preset == "eval" and cfg.sampling.temperature == 0.0
    cfg, smoke = prepare(["--config", str(example), "num_samples=2", "domains=[retail]"])
    assert cfg.num_samples == 2 and cfg.domains == ["retail"] and not smoke


def test_submit_pip_installs_the_projects_own_ranges():
    """`tau2-rollout submit pip=true` asks Ray for pyproject's dependency ranges (not pins of its own),
    without Ray itself and without extras."""
    import tomllib
    from pathlib import Path

    from packaging.requirements import Requirement

    from rollout.sweep.submit import build_job

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]
    expected = {str(Requirement(d)) for d in project["dependencies"] if Requirement(d).name != "ray"}
    _, runtime_env = build_job(["domains=[mock]", "user_llm.base_url=http://sim/v1"], pip=True)
    assert set(runtime_env["pip"]) == expected and len(expected) >= 4
    assert "pip" not in build_job(["domains=[mock]", "user_llm.base_url=http://sim/v1"])[1]


def choice_fields():
    from rollout.core.config.schema import walk
    from rollout.sweep.config import SweepConfig

    return [(key, f.metadata["choices"]) for key, f, _ in walk(SweepConfig) if f.metadata.get("choices")]


def test_the_choice_tuples_are_the_schemas():
    from rollout.core.config import ENV_BACKENDS, INVALID_TOOL_ARGS, SCRIPTED_POLICIES
    from rollout.core.config.schema import ENGINES, REASONING_PARSERS, TOOL_CALL_PARSERS
    from rollout.core.tokens import CAPTURE_MODES

    assert dict(choice_fields()) == {
        "llm.scripted": SCRIPTED_POLICIES,
        "llm.capture": CAPTURE_MODES,
        "llm.engine": ENGINES,
        "llm.tool_call_parser": TOOL_CALL_PARSERS,
        "llm.reasoning_parser": REASONING_PARSERS,
        "episode.invalid_tool_args": INVALID_TOOL_ARGS,
        "env.backend": ENV_BACKENDS,
    }


@pytest.mark.parametrize("key, choices", choice_fields())
def test_a_bad_choice_names_the_key_the_value_and_the_schemas_choices(key, choices):
    with pytest.raises(InvalidInput) as e:
        load_config([f"{key}=bogus"])
    assert f"{key}='bogus' is not one of {', '.join(choices)}" in str(e.value)
    for value in choices:
        load_config([f"{key}={value}", *(["llm.tokenizer=/models/m"] if value == "token_in" else [])])


def test_token_in_needs_a_tokenizer():
    with pytest.raises(InvalidInput, match="llm.capture=token_in needs llm.tokenizer"):
        load_config(["llm.capture=token_in"])


def test_choices_are_validated_from_any_schemas_metadata():
    from dataclasses import dataclass
    from typing import ClassVar, Optional

    from rollout.core.config import setting

    @dataclass
    class Section:
        mode: Optional[str] = setting(None, help="a mode", choices=("fast", "slow"))

    @dataclass
    class Tiny:
        CONF_FILES: ClassVar[tuple[str, ...]] = ()
        color: str = setting("red", help="a color", choices=("red", "blue"))
        section: Section = setting(default_factory=Section, help="a section")

    assert load_config(["color=blue", "section.mode=slow"], schema=Tiny).section.mode == "slow"
    with pytest.raises(InvalidInput) as e:
        load_config(["color=green", "section.mode=medium"], schema=Tiny)
    assert str(e.value).endswith(
        "color='green' is not one of red, blue; section.mode='medium' is not one of fast, slow (or null)"
    )


def test_a_request_endpoints_key_is_read_and_checked_as_config_keys_are(monkeypatch):
    from rollout.pool.requests import Endpoint

    monkeypatch.setenv("ROLLOUT_TEST_ENDPOINT_KEY", " sk-one-line \n")
    assert Endpoint("http://127.0.0.1:1/v1", api_key_env="ROLLOUT_TEST_ENDPOINT_KEY").with_key().api_key == "sk-one-line"
    monkeypatch.setenv("ROLLOUT_TEST_ENDPOINT_KEY", "sk-first\nX-Injected: 1")
    with pytest.raises(InvalidInput, match="whitespace or control characters") as e:
        Endpoint("http://127.0.0.1:1/v1", api_key_env="ROLLOUT_TEST_ENDPOINT_KEY").with_key()
    assert "sk-first" not in str(e.value)
    monkeypatch.delenv("ROLLOUT_TEST_ENDPOINT_KEY")
    with pytest.raises(
        InvalidInput, match="Endpoint.api_key_env names ROLLOUT_TEST_ENDPOINT_KEY, which is not set in the worker's"
    ):
        Endpoint("http://127.0.0.1:1/v1", api_key_env="ROLLOUT_TEST_ENDPOINT_KEY").with_key()
    with pytest.raises(InvalidInput, match="NAME of an environment variable"):
        Endpoint("http://127.0.0.1:1/v1", api_key_env="sk-a key")


def test_bounds_live_in_the_schema_and_check_any_section():
    from rollout.core.config import field_problems
    from rollout.core.config.schema import Bounds
    from rollout.pool.config import RayConfig, RetryConfig, check_pool

    assert [Bounds(minimum=1).text(), Bounds(above=0).text(), Bounds(0, maximum=64).text()] == [">= 1", "> 0", "0 to 64"]
    assert not Bounds(minimum=1).allows(True) and not Bounds(above=0).allows(float("nan")) and Bounds(above=0).allows(0.5)
    ray = RayConfig(num_workers=0, slots_per_worker="many", cpus_per_worker=0)  # as a trainer's dict would give them
    assert field_problems(ray, "ray.") == [
        "ray.num_workers=0: valid: an integer >= 1, or null",
        "ray.slots_per_worker='many': valid: an integer >= 1",
        "ray.cpus_per_worker=0: valid: a number > 0",
    ]
    assert check_pool(RayConfig(), RetryConfig(backoff_max_s=-1)) == ["retry.backoff_max_s=-1: valid: a number >= 0"]
    assert check_pool(RayConfig(), RetryConfig()) == []
