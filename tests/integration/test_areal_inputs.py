"""The AReaL workflow checks data rows strictly: types are not coerced, errors name key, value and what is valid."""

import asyncio

import pytest

from rollout.areal import Tau2Agent, spec_from_data
from rollout.core.failures import InvalidInput

ROW = {"domain": "mock", "task_id": "create_task_1"}


@pytest.mark.parametrize(
    "key, value, valid",
    [
        ("solo", "false", "true, false or null"),
        ("solo", "true", "true, false or null"),
        ("solo", 0, "true, false or null"),
        ("sample", "abc", "a non-negative integer"),
        ("sample", -5, "a non-negative integer"),
        ("sample", True, "a non-negative integer"),
        ("sample", 1.0, "a non-negative integer"),
        ("seed", 1.7, "an integer or null"),
        ("seed", "7", "an integer or null"),
        ("seed", False, "an integer or null"),
        ("overrides", "x", "a dict of config overrides"),
        ("overrides", ["episode.max_steps=5"], "a dict of config overrides"),
        ("task_id", 1.5, "a string or an integer"),
        ("task_id", True, "a string or an integer"),
        ("task_id", ["12"], "a string or an integer"),
        ("domain", 3, "a non-empty string"),
        ("domain", "", "a non-empty string"),
        ("split", 1, "a string"),
    ],
)
def test_bad_row_values_are_invalid_input_naming_key_value_and_what_is_valid(key, value, valid):
    with pytest.raises(InvalidInput) as e:
        spec_from_data({**ROW, key: value})
    message = e.value.failure.message
    assert f"data[{key!r}] = {value!r}" in message and valid in message, message


def test_good_rows():
    spec = spec_from_data(
        {
            "domain": "airline",
            "task_id": 12,
            "sample": 3,
            "seed": 7,
            "solo": False,
            "overrides": {"episode": {"max_steps": 50}},
            "split": "base",
        }
    )
    assert (spec.domain, spec.task_id, spec.sample, spec.seed, spec.solo) == ("airline", "12", 3, 7, False)
    spec = spec_from_data({**ROW, "seed": None, "solo": None, "sample": None, "overrides": None})
    assert (spec.sample, spec.seed, spec.solo) == (0, None, None)
    assert spec_from_data({**ROW, "solo": True, "sample": 0}).solo is True


def test_numpy_scalars_from_a_dataframe_row_are_accepted():
    np = pytest.importorskip("numpy")
    spec = spec_from_data({**ROW, "sample": np.int64(2), "seed": np.int32(9), "solo": np.bool_(True)})
    assert (spec.sample, spec.seed, spec.solo) == (2, 9, True)
    assert type(spec.sample) is int and type(spec.seed) is int and type(spec.solo) is bool
    with pytest.raises(InvalidInput, match="sample"):
        spec_from_data({**ROW, "sample": np.float64(2.0)})


def test_structure_errors():
    with pytest.raises(InvalidInput, match="must be a dict"):
        spec_from_data([("domain", "mock")])
    with pytest.raises(InvalidInput, match="missing 'task_id'"):
        spec_from_data({"domain": "mock"})
    with pytest.raises(InvalidInput, match="missing 'domain'"):
        spec_from_data({"domain": None, "task_id": "1"})
    with pytest.raises(InvalidInput, match=r"unknown data keys \['sampel'\]"):
        spec_from_data({**ROW, "sampel": 1})


def test_tau2agent_run_raises_invalid_input_before_any_request(server):
    agent = Tau2Agent(llm={"model": "a", "max_retries": 0}, user_llm={"base_url": server.url, "model": "u"})
    for bad in ({**ROW, "solo": "false"}, {**ROW, "sample": "abc"}, {**ROW, "overrides": "x"}, {**ROW, "seed": 1.7}):
        with pytest.raises(InvalidInput):
            asyncio.run(agent.run(bad, base_url=server.url, api_key="k"))
    assert server.stats["agent"] == server.stats["user"] == 0
