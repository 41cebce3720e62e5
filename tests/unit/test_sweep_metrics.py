"""rollout.sweep.metrics: the summary, counted as tau2 counts failed episodes, and its table."""

import random

import pytest
from tau2.metrics.agent_metrics import pass_hat_k

from rollout.core.failures import Failure, FailureClass
from rollout.sweep.metrics import format_table, summarize
from rollout.sweep.records import SweepRecord

pytestmark = pytest.mark.unit


def ok(task, sample=0, reward=1.0, domain="airline"):
    return SweepRecord(domain, task, sample, reward=reward)


def failed(task, cls=FailureClass.TIMEOUT, sample=0):
    return SweepRecord("airline", task, sample, failure=Failure(cls, "x"), attempts=3)


def test_summary_counts_failed_episodes_as_tau2_does():
    rows = [
        ok("a", 0, 1.0),
        ok("a", 1, 1.0),
        ok("b", 0, 0.0),
        failed("b", sample=1),
        failed("c", FailureClass.MODEL_ERROR),
        ok("c", 1, 1.0),
    ]
    s = summarize(rows, num_samples=2)["all"]
    assert s["mean_reward"] == pytest.approx(3 / 4) and s["scored"] == 4 and s["failed"] == 2
    assert s["failures"] == {"model_error": 1, "timeout": 1}
    t = s["tau2_counting"]
    assert t["mean_reward"] == pytest.approx(3 / 6)  # every failed episode is a 0.0, as tau2 records it
    assert t["pass_hat_k"]["2"] == pytest.approx((1 + 0 + 0) / 3)  # only a succeeds twice
    assert s["pass_hat_k"]["2"] == pytest.approx(1.0)  # scored only: a has 2 samples, b and c have 1
    table = format_table(summarize(rows, num_samples=2))
    assert "mean (failed=0, as tau2)" in table and "2 (model_error=1, timeout=1)" in table


def test_pass_hat_k_is_the_mean_of_tau2s_per_task_values():
    """Tasks with equal (trials, successes) are computed once; the average is still tau2's per task."""
    rng = random.Random(7)
    rows = [
        ok(f"t{t}", i, float(rng.random() < rng.choice([0.0, 0.3, 1.0])))
        for t in range(40)
        for i in range(rng.choice([3, 6, 6, 9]))
    ]
    got = summarize(rows, num_samples=9)["all"]["pass_hat_k"]
    by_task = {}
    for r in rows:
        by_task.setdefault(r.task_id, []).append(r.reward)
    for k in range(1, 10):
        values = [pass_hat_k(len(v), sum(x == 1.0 for x in v), k) for v in by_task.values() if len(v) >= k]
        assert got[str(k)] == pytest.approx(sum(values) / len(values), rel=1e-12)


def test_summary_is_built_with_the_heap_frozen_and_leaves_it_as_it_was():
    """The records are read while the process's earlier objects are out of garbage collection
    (a full collection during a 20,000-record build then walks only what the build allocates),
    and the heap is unfrozen afterwards; a process that settled its heap stays settled."""
    import gc

    from rollout.core.process_env import settle_heap

    frozen_while_reading = []

    def records():
        for i in range(3):
            frozen_while_reading.append(gc.get_freeze_count())
            yield ok("a", i)

    assert gc.get_freeze_count() == 0
    assert summarize(records(), num_samples=3)["all"]["episodes"] == 3
    assert min(frozen_while_reading) > 0 and gc.get_freeze_count() == 0
    settle_heap()
    try:
        settled = gc.get_freeze_count()
        summarize(records(), num_samples=3)
        # still frozen (an unfreeze leaves 0); frozen objects other threads free lower the count a little
        assert gc.get_freeze_count() > 0.9 * settled > 0
    finally:
        gc.unfreeze()
