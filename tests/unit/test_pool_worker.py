"""The pool's worker outside Ray: what its warm-up leaves in the process."""

import asyncio
import gc

import pytest

from rollout.core.config import load_config
from rollout.pool.worker import RolloutWorker

pytestmark = pytest.mark.unit


def test_warmup_loads_the_domains_then_settles_the_heap():
    """After its warm-up the worker's objects (libraries, the domains' tasks and databases) are
    out of the garbage collector's full collections, which would otherwise walk them again and
    again while episodes run."""
    from rollout.env.domains import load_domain

    worker = RolloutWorker(load_config([]), worker_id=0, slots=1)
    assert gc.get_freeze_count() == 0
    try:
        asyncio.run(worker.warmup(["mock"]))
        tasks = load_domain("mock").tasks  # loaded by the warm-up
        assert gc.get_freeze_count() > 0 and gc.is_tracked(tasks)
        assert not any(o is tasks for o in gc.get_objects())  # in no generation a collection walks
    finally:
        gc.unfreeze()
