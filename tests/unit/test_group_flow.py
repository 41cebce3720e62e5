"""stream_groups' flow without Ray: the buffer ahead of the trainer, the staleness bound's
admission and hand-over rules, regeneration, and the inputs they refuse."""

from types import SimpleNamespace

import pytest

from rollout.agent.episode import ValidEpisode
from rollout.core.failures import InvalidInput
from rollout.pool.group_flow import GroupFlow
from rollout.pool.requests import RolloutRequest, ValidRequest
from rollout.pool.staleness import StalenessBound

pytestmark = pytest.mark.unit


def group(task: str, n: int = 2) -> list[RolloutRequest]:
    return [RolloutRequest("mock", task, sample=k) for k in range(n)]


def checked(requests: list[RolloutRequest]) -> list[ValidRequest]:
    """The requests with the episodes the pool's check would give them (no tau2 here)."""
    out = []
    for r in requests:
        spec = r.spec()
        out.append(ValidRequest(r, ValidEpisode(spec.domain, spec.task_id, spec.sample, spec.seed, True, spec.domain)))
    return out


def ended(r: ValidRequest, *, oldest=None, ok=True):
    """A finished trajectory as the flow reads it."""
    return SimpleNamespace(group_id=r.group, ok=ok, oldest_version=oldest)


class Clock:
    """The pool's weight version, moved by the test's 'trainer'."""

    def __init__(self, v=0):
        self.v = v

    def __call__(self):
        return self.v


def flow_of(source, version=None, **kw) -> GroupFlow:
    return GroupFlow(source, extra_samples=kw.pop("extra_samples", 0), check=checked, version=version or Clock(), **kw)


def finish(flow: GroupFlow, started: list[RolloutRequest], first: int, oldest=None):
    """End the requests started at positions first.. (as the pool would), returning the groups handed back."""
    out = []
    for position in range(first, first + len(started)):
        out += end(flow, position, ended(flow.groups.requests[position], oldest=oldest))
    return out


def end(flow: GroupFlow, position: int, trajectory) -> list:
    """One end, and the groups it lets the flow hand back."""
    flow.ended(position, trajectory)
    out = []
    while (group := flow.next_group()) is not None:
        out.append(group)
    return out


def test_without_a_buffer_every_request_starts_at_once():
    flow = flow_of(group("a") + group("b"))
    assert len(flow.to_submit()) == 4 and flow.to_submit() == []


def test_the_buffer_keeps_k_groups_ahead_reading_an_endless_generator_lazily():
    read = []

    def endless():
        k = 0
        while True:
            read.append(k)
            yield from group(f"t{k}")
            k += 1

    flow = flow_of(endless(), ahead=3)
    started = flow.to_submit()
    assert [r.request.task_id for r in started] == ["t0", "t0", "t1", "t1", "t2", "t2"]
    assert len(read) <= 4  # the generator is read a group at a time, not drained
    assert flow.to_submit() == []  # three ahead: nothing more until one is handed back
    handed = finish(flow, started[:2], 0)
    assert [t.group_id for t in handed[0]] == ["mock/t0", "mock/t0"]
    assert [r.request.task_id for r in flow.to_submit()] == ["t3", "t3"]


def test_admission_starts_no_group_the_bound_could_not_hand_over_in_time():
    version = Clock(5)
    flow = flow_of(
        iter(group("a") + group("b") + group("c") + group("d") + group("e")), version, max_staleness=1, groups_per_step=2
    )
    first = flow.to_submit()
    assert flow.started == 4 and len(first) == 8  # (0 steps + 1 + 1) * 2 groups
    finish(flow, first, 0, oldest=5)
    assert flow.to_submit() == []  # the version has not moved
    version.v = 6
    assert [r.request.task_id for r in flow.to_submit()] == ["e", "e"]


def test_a_group_older_than_the_bound_is_dropped_whole_and_regenerated():
    version = Clock(0)
    flow = flow_of(group("a"), version, max_staleness=1, groups_per_step=1)
    started = flow.to_submit()
    version.v = 2
    assert finish(flow, started, 0, oldest=0) == []
    assert flow.stale_groups == 1 and not flow.done
    again = flow.to_submit()
    assert [(r.request.task_id, r.request.sample) for r in again] == [("a", 0), ("a", 1)]
    assert end(flow, 1, ended(started[1], oldest=0)) == []  # a straggler of the earlier run: ignored
    assert end(flow, 2, ended(again[0], oldest=2)) == []
    (handed,) = end(flow, 3, ended(again[1], oldest=2))
    assert [t.oldest_version for t in handed] == [2, 2] and flow.done


def test_within_the_bound_a_group_is_handed_over():
    version = Clock(3)
    flow = flow_of(group("a"), version, max_staleness=1, groups_per_step=1)
    started = flow.to_submit()
    version.v = 4
    assert len(finish(flow, started, 0, oldest=3)) == 1 and flow.stale_groups == 0


def test_a_trainer_that_never_moves_the_version_gets_an_error_not_a_hang():
    flow = flow_of(iter(group("a") + group("b")), Clock(0), max_staleness=0, groups_per_step=1)
    started = flow.to_submit()
    finish(flow, started, 0, oldest=0)
    assert flow.to_submit() == []
    with pytest.raises(InvalidInput, match="groups_per_step=1"):
        flow.check_waiting()


def test_extra_samples_and_stragglers_are_cancelled_once_a_group_is_complete():
    flow = flow_of(group("a"), ahead=1, extra_samples=2)
    started = flow.to_submit()
    assert len(started) == 4
    assert end(flow, 0, ended(started[0])) == []
    assert [len(g) for g in end(flow, 1, ended(started[1]))] == [2]
    assert flow.to_cancel() == [0, 1, 2, 3] and flow.to_cancel() == []


def test_a_group_that_comes_back_later_is_refused():
    flow = flow_of(iter(group("a") + group("b") + group("a")), ahead=5)
    with pytest.raises(InvalidInput, match="comes back"):
        flow.to_submit()


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"ahead": 0}, "ahead=0"),
        ({"ahead": True}, "ahead=True"),
        ({"max_staleness": -1, "groups_per_step": 1}, "max_staleness=-1"),
        ({"max_staleness": 1}, "needs groups_per_step"),
        ({"groups_per_step": 2}, "set max_staleness too"),
        ({"max_staleness": 1, "groups_per_step": 0}, "groups_per_step=0"),
    ],
)
def test_bad_arguments_name_what_is_valid(kw, match):
    with pytest.raises(InvalidInput, match=match):
        flow_of(group("a"), **kw)


def test_the_bound_is_none_without_max_staleness():
    assert StalenessBound.of(None, None) is None
    assert StalenessBound.of(0, 4) == StalenessBound(0, 4)


def test_under_a_bound_groups_are_handed_back_in_the_order_they_started():
    """A group that completes early waits for those started before it: the bound then holds by
    admission alone, and a slow group is never overtaken into staleness and dropped."""
    version = Clock(0)
    flow = flow_of(iter(group("slow") + group("fast")), version, max_staleness=0, groups_per_step=2)
    started = flow.to_submit()
    slow, fast = started[:2], started[2:4]
    assert finish(flow, fast, 2, oldest=0) == []  # complete, but the slow group started first
    handed = finish(flow, slow, 0, oldest=0)
    assert [g[0].group_id for g in handed] == ["mock/slow", "mock/fast"] and flow.stale_groups == 0


def test_without_a_bound_groups_are_handed_back_as_they_complete():
    flow = flow_of(group("slow") + group("fast"))
    flow.to_submit()
    handed = finish(flow, flow.groups.requests[2:4], 2)
    assert [g[0].group_id for g in handed] == ["mock/fast"]
