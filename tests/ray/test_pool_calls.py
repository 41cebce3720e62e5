"""Concurrent calls on one rollout pool: a call's cancels touch only its own jobs, one bad call
fails alone, jobs a caller stopped waiting for are counted, keys the workers cannot read refuse
the call once (real Ray, scripted model server)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from rollout.core.failures import InvalidInput
from rollout.pool import Endpoint, RolloutPool, RolloutRequest
from rollout.scripted import Faults, ScriptedServer
from tests.ray.test_pool import pool_config

TASK = ("mock", "create_task_1")


def requests(samples, **fields):
    return [RolloutRequest(*TASK, sample=k, **fields) for k in samples]


def wait_for(condition, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_overlapping_calls_over_one_task_each_get_every_episode(ray_cluster):
    """stream_groups with extra samples cancels its stragglers; a run() and a stream() of the
    same task (the same group id) submitted while they were queued lose none of theirs."""
    with ScriptedServer("oracle", record=False, faults=Faults(latency_s=0.05)) as server:
        with RolloutPool(pool_config(server), ray={"num_workers": 1, "slots_per_worker": 2}) as pool:
            pool.start(["mock"])
            got: dict[str, list] = {}

            def call(name, fn):
                got[name] = fn()

            grouped = threading.Thread(
                target=call, args=("groups", lambda: list(pool.stream_groups(requests(range(2)), extra_samples=2)))
            )
            grouped.start()
            wait_for(lambda: pool.stats()["submitted"] >= 4)
            others = [
                threading.Thread(target=call, args=("run", lambda: pool.run(requests(range(20, 24))))),
                threading.Thread(target=call, args=("stream", lambda: list(pool.stream(requests(range(30, 34)))))),
            ]
            for t in others:
                t.start()
            for t in [grouped, *others]:
                t.join(timeout=300)
            stats = pool.stats()
    [group] = got["groups"]
    assert len(group) == 2 and all(t.ok for t in group)
    for name, samples in (("run", range(20, 24)), ("stream", range(30, 34))):
        assert sorted(t.sample for t in got[name]) == list(samples), name
        assert all(t.ok and t.reward == 1.0 for t in got[name]), [(t.sample, t.failure) for t in got[name]]
    # the two extras of the group ended (scored, or cancelled as stragglers): counted, never lost
    assert stats["ended"] == stats["submitted"] == 12
    assert stats["scored"] + stats["failed"].get("cancelled", 0) == 12


def test_an_unsendable_request_fails_only_its_own_call(ray_cluster):
    with ScriptedServer("oracle", record=False, faults=Faults(latency_s=0.05)) as server:
        with RolloutPool(pool_config(server), ray={"num_workers": 1, "slots_per_worker": 4}) as pool:
            pool.start(["mock"])
            got = {}
            good = threading.Thread(target=lambda: got.update(run=pool.run(requests(range(4)))))
            good.start()
            wait_for(lambda: pool.stats()["submitted"] >= 4)
            policy = Endpoint(server.url, headers={"Authorization": "Bearer sk-SECRET-in-a-header"})
            with pytest.raises(InvalidInput) as e:
                pool.run([RolloutRequest(*TASK, sample=9, policy=policy, tags={"lock": threading.Lock()})])
            good.join(timeout=300)
    assert "RolloutRequest.tags cannot be sent to a worker" in str(e.value) and "SECRET" not in str(e.value)
    assert len(got["run"]) == 4 and all(t.ok for t in got["run"])


def test_jobs_a_caller_stopped_waiting_for_are_cancelled_and_counted(ray_cluster):
    """A closed generator cancels what it asked for at once (nothing left queued or running),
    and stats() counts those jobs as cancelled."""
    with ScriptedServer("oracle", record=False, faults=Faults(latency_s=0.2)) as server:
        with RolloutPool(pool_config(server), ray={"num_workers": 1, "slots_per_worker": 2}) as pool:
            stream = pool.stream_groups(requests(range(2)), extra_samples=64)
            next(stream)
            stream.close()
            wait_for(lambda: pool.dispatcher.pending == 0, timeout_s=30)
            wait_for(lambda: pool.stats()["ended"] == 66, timeout_s=30)
            stats = pool.stats()
    assert stats["submitted"] == 66 and stats["failed"]["cancelled"] == 66 - stats["scored"] >= 60


def test_a_key_variable_the_workers_lack_refuses_the_call_once(ray_cluster, monkeypatch):
    """Set in the driver after Ray started, the variable is not in the workers' processes."""
    monkeypatch.setenv("ROLLOUT_DRIVER_ONLY_KEY", "sk-driver-only-1234")
    with ScriptedServer("oracle", record=False) as server:
        with RolloutPool(pool_config(server, "llm.api_key_env=ROLLOUT_DRIVER_ONLY_KEY"), ray={"num_workers": 1}) as pool:
            with pytest.raises(InvalidInput, match=r"api_key_env names ROLLOUT_DRIVER_ONLY_KEY, which is not set in .*worker 0"):
                pool.run(requests(range(3)))
            assert pool.dispatcher is None and pool.stats()["submitted"] == 0
        with RolloutPool(pool_config(server), ray={"num_workers": 1}) as pool:
            policy = Endpoint(server.url, api_key_env="ROLLOUT_DRIVER_ONLY_KEY")
            with pytest.raises(InvalidInput, match=r"Endpoint.api_key_env names ROLLOUT_DRIVER_ONLY_KEY, which is not set"):
                pool.run(requests(range(3), policy=policy))
            assert pool.stats()["submitted"] == 0
            [t] = pool.run(requests([0], policy=Endpoint(server.url, api_key_env="ROLLOUT_TEST_KEY")))
            assert t.ok and os.environ["ROLLOUT_TEST_KEY"]
