"""Bad input to the rollout pool is refused in the driver, once, naming the field, before any
worker starts (no Ray here: a refused call never starts one)."""

from __future__ import annotations

import logging
import threading

import pytest

from rollout.core.config import api_key_of, load_config
from rollout.core.failures import InvalidInput
from rollout.pool import RolloutPool, RolloutRequest
from rollout.pool.groups import Groups
from rollout.pool.requests import Endpoint

HEADER_KEY = "Bearer sk-header-SECRET-777"
CONFIG = ["llm.base_url=http://127.0.0.1:9/v1", "llm.model=m", "user_llm.base_url=http://127.0.0.1:9/v1", "user_llm.model=u"]


@pytest.fixture
def pool():
    p = RolloutPool(CONFIG)
    yield p
    assert p.dispatcher is None, "a refused call started the workers"
    p.close()


def mutated_endpoint(**fields) -> Endpoint:
    """An Endpoint whose dicts were changed after it was built (it is frozen, its dicts are not)."""
    e = Endpoint("http://127.0.0.1:9/v1", headers={"Authorization": HEADER_KEY})
    for name, value in fields.items():
        getattr(e, name).update(value)
    return e


@pytest.mark.parametrize(
    "request_fields, named",
    [
        ({"sample": "x"}, "RolloutRequest.sample='x'"),
        ({"sample": -1}, "RolloutRequest.sample=-1"),
        ({"solo": "no"}, "RolloutRequest.solo='no'"),
        ({"seed": 2**64}, "RolloutRequest.seed="),
        ({"weight_version": "7"}, "RolloutRequest.weight_version='7'"),
        ({"policy": "http://127.0.0.1:9/v1"}, "RolloutRequest.policy is str"),
        ({"tags": {"lock": threading.Lock()}}, "RolloutRequest.tags cannot be sent to a worker"),
        ({"policy": mutated_endpoint(headers={"X-Route": "a\r\nInjected: 1"})}, "Endpoint.headers['X-Route']"),
        ({"policy": mutated_endpoint(extra_body={"stream": True})}, "Endpoint.extra_body sets stream"),
        ({"policy": mutated_endpoint(extra_body={"messages": []})}, "Endpoint.extra_body sets messages"),
    ],
)
def test_a_bad_request_field_is_refused_once_naming_it_before_any_worker_starts(pool, request_fields, named):
    good = RolloutRequest("mock", "create_task_1")
    bad = RolloutRequest("mock", "create_task_1", **{"sample": 1, **request_fields})
    for call in (pool.run, lambda rs: list(pool.stream(rs)), lambda rs: list(pool.stream_groups(rs))):
        with pytest.raises(InvalidInput) as e:
            call([good, bad])
        message = str(e.value)
        assert message.startswith("invalid_input: request 1: ") and named in message and "\n" not in message
        assert "SECRET" not in message


@pytest.mark.parametrize(
    "build, named",
    [
        (lambda: Endpoint(""), "Endpoint.base_url=''"),
        (lambda: Endpoint("http://"), "Endpoint.base_url='http://'"),
        (lambda: Endpoint("127.0.0.1:8000/v1"), "not an http(s) URL"),
        (lambda: Endpoint("http://h:port/v1"), "not an http(s) URL"),
        (lambda: Endpoint("http://h/v1", headers={"X": "a\nb"}), "Endpoint.headers['X']"),
        (lambda: Endpoint("http://h/v1", headers={"Bad Name": "v"}), "not an HTTP header name"),
        (lambda: Endpoint("http://h/v1", extra_body={"model": "other", "n": 2}), "sets model, n"),
        (lambda: Endpoint("http://h/v1", extra_body={"return_token_ids": True}), "token capture is llm.capture"),
    ],
)
def test_an_endpoint_that_cannot_be_used_is_refused_when_built(build, named):
    with pytest.raises(InvalidInput) as e:
        build()
    assert named in str(e.value)


def test_endpoint_headers_are_never_shown():
    e = Endpoint("http://h/v1", headers={"Authorization": HEADER_KEY}, extra_body={"temperature": 0.5})
    assert "SECRET" not in repr(e) and "SECRET" not in repr(RolloutRequest("mock", "t", policy=e))


def test_pool_settings_are_checked_when_the_pool_is_built():
    with pytest.raises(InvalidInput, match=r"ray= has unknown keys bogus: valid: address, num_workers"):
        RolloutPool(CONFIG, ray={"bogus": 1})
    with pytest.raises(InvalidInput, match=r"retry= is str"):
        RolloutPool(CONFIG, retry="3")
    with pytest.raises(InvalidInput, match=r"ray.slots_per_worker=0: valid: an integer >= 1"):
        RolloutPool(CONFIG, ray={"slots_per_worker": 0})
    for cap in ("llm", "user_llm"):
        with pytest.raises(InvalidInput, match=rf"{cap}.max_concurrency=-1: valid: an integer >= 0"):
            RolloutPool([*CONFIG, f"{cap}.max_concurrency=-1"])


@pytest.mark.parametrize("extra", ["2", 2.0, True, -1, 200000])
def test_extra_samples_must_be_a_bounded_integer(pool, extra):
    with pytest.raises(InvalidInput, match=r"extra_samples=.*: valid: an integer from 0 to 64"):
        next(pool.stream_groups([RolloutRequest("mock", "create_task_1")], extra_samples=extra))


def test_a_custom_group_over_two_tasks_gets_extras_of_each_task_with_fresh_samples(pool):
    requests = [
        RolloutRequest("mock", "create_task_1", sample=0, group_id="g"),
        RolloutRequest("mock", "update_task_with_message_history", sample=3, group_id="g"),
        RolloutRequest("mock", "create_task_1", sample=7),
    ]
    groups = Groups(pool.check(requests), extra_samples=3)
    extras = [r.request for r in groups.requests[3:]]
    assert [(r.group, r.task_id, r.sample) for r in extras] == [
        ("g", "create_task_1", 8),
        ("g", "update_task_with_message_history", 4),
        ("g", "create_task_1", 9),
        ("mock/create_task_1", "create_task_1", 10),
        ("mock/create_task_1", "create_task_1", 11),
        ("mock/create_task_1", "create_task_1", 12),
    ]
    episodes = [r.episode for r in groups.requests]
    assert len({(e.domain, e.task_id, e.sample) for e in episodes}) == len({e.seed for e in episodes}) == len(episodes)
    assert groups.positions["g"] == [0, 1, 3, 4, 5] and groups.wanted == {"g": 2, "mock/create_task_1": 1}


def test_requests_that_repeat_one_seed_are_warned_about(pool, caplog):
    with caplog.at_level(logging.WARNING, logger="rollout.pool.checks"):
        pool.check([RolloutRequest("mock", "create_task_1")] * 8)
    assert "7 requests repeat another's domain, task_id and sample with no seed" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rollout.pool.checks"):
        pool.check([RolloutRequest("mock", "create_task_1", sample=k) for k in range(8)])
        pool.check([RolloutRequest("mock", "create_task_1", seed=k) for k in range(8)])
    assert not caplog.text


def test_a_closed_pool_refuses_calls():
    pool = RolloutPool(CONFIG)
    pool.close()
    for call in (pool.run, pool.check, pool.start):
        with pytest.raises(RuntimeError, match="this RolloutPool is closed: create a new one"):
            call([RolloutRequest("mock", "create_task_1")])
    assert pool.dispatcher is None


def test_a_key_file_that_is_not_utf8_is_one_line(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_bytes(b"\xff\xfesk-\x80\x81")
    section = load_config(CONFIG).llm
    section.api_key_file = str(key_file)
    with pytest.raises(InvalidInput) as e:
        api_key_of(section)
    assert "is not UTF-8 text: valid: a file holding the key on one line" in str(e.value)


@pytest.mark.parametrize("where", ["a directory", "a missing directory", "under a file", "domains=[]", "domains=[bogus]"])
def test_capture_check_refuses_a_report_path_it_cannot_write_before_asking_the_server(tmp_path, capsys, where):
    from rollout.scripted import ScriptedServer
    from tests.helpers import command

    (tmp_path / "file").write_text("")
    out = {
        "a directory": tmp_path,
        "a missing directory": tmp_path / "no" / "r.json",
        "under a file": tmp_path / "file" / "r.json",
    }
    args = [f"out={out[where]}", "domains=[mock]"] if where in out else [f"out={tmp_path / 'r.json'}", where]
    with ScriptedServer("oracle") as server:
        status = command("capture-check")([f"llm.base_url={server.url}", "llm.model=a", *args])
        asked = len(server.requests)
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error: out=" if where in out else "error: ") and err.count("\n") == 1, err
    assert "valid" in err
    assert asked == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.parametrize(
    "task_id, why",
    [
        ("create_task_1_nl_eval", "it has no expected actions"),
        ("update_task_with_message_history", "its message history has user turns"),
    ],
)
def test_a_task_tau2_cannot_run_solo_is_refused_naming_tau2s_reason(pool, task_id, why):
    with pytest.raises(InvalidInput, match=rf"request 1: task '{task_id}' of domain 'mock' cannot run solo: {why}"):
        pool.run([RolloutRequest("mock", "create_task_1", solo=True), RolloutRequest("mock", task_id, solo=True)])


def test_ray_and_retry_sections_may_be_any_mapping():
    """verl instantiates the agent loop from YAML: its `ray` section arrives as an OmegaConf DictConfig."""
    from omegaconf import OmegaConf

    from rollout.pool.config import RayConfig, RetryConfig
    from rollout.pool.config import typed_section as _typed

    assert _typed(RayConfig, OmegaConf.create({"num_workers": 3}), "ray").num_workers == 3
    assert _typed(RetryConfig, OmegaConf.create({"max_attempts": 1}), "retry").max_attempts == 1
    with pytest.raises(InvalidInput, match="unknown keys bogus"):
        _typed(RayConfig, OmegaConf.create({"bogus": 1}), "ray")
