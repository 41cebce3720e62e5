"""The rollout pool's pure logic, without Ray: seeds, groups with extra samples, jobs and the
retry rule, the job queue, and how many workers a Ray gets."""

import pytest

from rollout.agent.episode import ValidEpisode
from rollout.core.config import load_config
from rollout.core.failures import Failure, FailureClass, InvalidInput
from rollout.core.results import EpisodeResult
from rollout.pool import RolloutRequest, ValidRequest, derive_seed
from rollout.pool.cluster import check_local_fit, worker_config, worker_count
from rollout.pool.config import RayConfig, RetryConfig
from rollout.pool.groups import MAX_EXTRA_SAMPLES, Groups, check_extra_samples
from rollout.pool.jobs import Job, JobQueue, retry_delay

pytestmark = pytest.mark.unit

SEED = 7
MODEL_ERROR = Failure(FailureClass.MODEL_ERROR, "500")


def valid(task="t1", sample=0, *, group=None, version=None, seed=None, tags=None) -> ValidRequest:
    """A request with the episode `check_episode` would make of it (solo, on the mock domain)."""
    request = RolloutRequest("mock", task, sample, group_id=group, seed=seed, weight_version=version, tags=tags or {})
    spec = request.spec(SEED)
    episode = ValidEpisode(spec.domain, spec.task_id, spec.sample, spec.seed, True, "mock", spec.weight_version)
    return ValidRequest(request, episode)


def ended(v: ValidRequest, reward=None, failure=None):
    result = v.episode.result(failure)
    result.reward = reward
    return Job(0, v).trajectory(result)


# ---- seeds -----------------------------------------------------------------------------------
def test_a_seed_is_derived_from_identity_and_version_and_is_stable():
    assert derive_seed(SEED, "mock", "t1", 0) == derive_seed(SEED, "mock", "t1", 0)
    assert derive_seed(0, "airline", "12", 1) == 206852552  # sha256 of "0:airline:12:1": the same in every process and run
    others = {derive_seed(SEED, "mock", "t1", 1), derive_seed(SEED, "mock", "t2", 0), derive_seed(SEED + 1, "mock", "t1", 0)}
    assert derive_seed(SEED, "mock", "t1", 0) not in others and len(others) == 3
    assert derive_seed(SEED, "mock", "t1", 0, 3) != derive_seed(SEED, "mock", "t1", 0, 4)
    assert 0 <= derive_seed(SEED, "mock", "t1", 0, 3) < 2**31


def test_a_request_without_a_seed_gets_the_derived_one_and_a_given_seed_is_kept():
    assert RolloutRequest("mock", "t1", 2, weight_version=5).spec(SEED).seed == derive_seed(SEED, "mock", "t1", 2, 5)
    assert RolloutRequest("mock", "t1", 2, seed=11).spec(SEED).seed == 11


# ---- groups with extra samples ---------------------------------------------------------------
def test_extras_repeat_a_groups_requests_round_robin_with_fresh_samples_and_derived_seeds():
    requests = [valid("t1", 0, group="g", version=3), valid("t2", 3, group="g", version=3), valid("t1", 7)]
    groups = Groups(requests, extra_samples=3, base_seed=SEED)
    extras = groups.requests[3:]
    assert [(r.group, r.episode.task_id, r.episode.sample) for r in extras] == [
        ("g", "t1", 8),
        ("g", "t2", 4),
        ("g", "t1", 9),
        ("mock/t1", "t1", 10),
        ("mock/t1", "t1", 11),
        ("mock/t1", "t1", 12),
    ]
    assert [r.episode.seed for r in extras[:3]] == [
        derive_seed(SEED, "mock", "t1", 8, 3),
        derive_seed(SEED, "mock", "t2", 4, 3),
        derive_seed(SEED, "mock", "t1", 9, 3),
    ]
    assert all(r.request.sample == r.episode.sample and r.request.seed is None for r in extras)
    assert all(r.episode.solo and r.request.weight_version == r.episode.weight_version for r in extras)
    assert groups.positions == {"g": [0, 1, 3, 4, 5], "mock/t1": [2, 6, 7, 8]}
    assert groups.wanted == {"g": 2, "mock/t1": 1}


def test_a_group_is_complete_with_its_first_n_scored_and_then_ignores_stragglers():
    requests = [valid("t1", k) for k in range(2)]
    groups = Groups(requests, extra_samples=2, base_seed=SEED)
    r = groups.requests
    assert groups.add(ended(r[0], failure=MODEL_ERROR)) is None
    assert groups.add(ended(r[2], reward=1.0)) is None
    group = groups.add(ended(r[3], reward=0.0))
    assert [t.sample for t in group] == [2, 3] and all(t.ok for t in group)
    assert groups.stragglers("mock/t1")  # r[1] still runs: the call cancels it
    assert groups.add(ended(r[1], reward=1.0)) is None  # its end after the group was yielded


def test_a_group_without_enough_scored_yields_what_ended_once_all_have():
    requests = [valid("t1", k) for k in range(2)]
    groups = Groups(requests, extra_samples=1, base_seed=SEED)
    r = groups.requests
    assert groups.add(ended(r[0], reward=1.0)) is None
    assert groups.add(ended(r[1], failure=MODEL_ERROR)) is None
    group = groups.add(ended(r[2], failure=MODEL_ERROR))
    assert [t.ok for t in group] == [True, False] and not groups.stragglers("mock/t1")


@pytest.mark.parametrize("extra", ["2", 2.0, True, -1, MAX_EXTRA_SAMPLES + 1])
def test_extra_samples_must_be_a_bounded_integer(extra):
    with pytest.raises(InvalidInput, match=rf"extra_samples=.*: valid: an integer from 0 to {MAX_EXTRA_SAMPLES}"):
        check_extra_samples(extra)


# ---- jobs and the retry rule -----------------------------------------------------------------
def test_infrastructure_failures_are_retried_with_backoff_while_attempts_are_left():
    retry = RetryConfig(max_attempts=3, backoff_s=1.0, backoff_max_s=1.5)
    job = Job(1, valid())
    assert retry_delay(job, MODEL_ERROR, retry) == 1.0
    job = job.retried(MODEL_ERROR)
    assert retry_delay(job, Failure(FailureClass.WORKER_DIED, "x"), retry) == 1.5  # doubled, capped
    assert retry_delay(job.retried(MODEL_ERROR), MODEL_ERROR, retry) is None  # the last attempt


@pytest.mark.parametrize("failure", [None, Failure(FailureClass.INVALID_INPUT, "x"), Failure(FailureClass.CANCELLED, "x")])
def test_a_score_bad_input_and_a_cancel_end_the_job(failure):
    assert retry_delay(Job(1, valid()), failure, RetryConfig(max_attempts=5)) is None


def test_a_jobs_trajectory_carries_its_attempts_earlier_failures_and_identity():
    v = valid("t1", 2, group="g", version=4, tags={"step": 9})
    job = Job(5, v).retried(MODEL_ERROR).retried(Failure(FailureClass.TIMEOUT, "slow"))
    assert (job.id, job.attempt) == (5, 3) and Job(5, v).attempt == 1
    t = job.trajectory(v.episode.result(), worker=2)
    assert t.attempts == 3 and [f.failure_class for f in t.earlier_failures] == [FailureClass.MODEL_ERROR, FailureClass.TIMEOUT]
    assert (t.group_id, t.weight_version, t.tags) == ("g", 4, {"worker": 2, "step": 9})
    assert Job(5, valid(tags={"worker": "mine"})).trajectory(v.episode.result(), worker=2).tags == {"worker": "mine"}
    cancelled = job.ended(Failure(FailureClass.CANCELLED, "by the caller"))
    assert cancelled.failure.failure_class is FailureClass.CANCELLED and cancelled.train_action == "drop"
    assert (cancelled.domain, cancelled.task_id, cancelled.sample, cancelled.result.seed) == ("mock", "t1", 2, v.episode.seed)
    assert cancelled.attempts == 3 and len(cancelled.earlier_failures) == 2 and cancelled.reward is None


def test_the_episode_result_of_a_valid_episode_names_it():
    episode = valid("t1", 1).episode
    result = episode.result(MODEL_ERROR)
    assert isinstance(result, EpisodeResult) and not result.ok and result.solo and result.tau2_domain == "mock"
    assert (result.domain, result.task_id, result.sample, result.seed) == ("mock", "t1", 1, episode.seed)


# ---- the job queue ---------------------------------------------------------------------------
def test_the_queue_runs_jobs_in_order_then_retries_once_their_backoff_is_over():
    queue = JobQueue()
    first = queue.submit([valid("t1"), valid("t2")])
    assert queue.take_in() is None and queue.ready == 2 and len(queue) == 2
    assert queue.pop() is first[0]
    queue.retry_later(first[0].retried(MODEL_ERROR), 5.0, now=100.0)
    assert queue.next_due() == 105.0 and queue.delayed == 1
    queue.release_due(now=104.0)
    assert queue.ready == 1
    queue.release_due(now=105.0)
    assert queue.pop().attempt == 2 and queue.pop() is first[1]
    with pytest.raises(IndexError):
        queue.pop()


def test_cancels_take_queued_and_delayed_jobs_of_a_group_or_by_id():
    queue = JobQueue()
    a, b, c, d = queue.submit([valid("t1", 0), valid("t1", 1), valid("t2", 0), valid("t3", 0)])
    queue.take_in()
    queue.retry_later(queue.pop(), 1.0, now=0.0)  # a waits for a retry
    queue.cancel_group("mock/t1")
    queue.cancel_jobs([d.id])
    hit = queue.take_in()
    assert hit(a) and hit(b) and hit(d) and not hit(c)
    assert {job.id for job in queue.cancel(hit)} == {a.id, b.id, d.id}
    assert queue.ready == 1 and queue.delayed == 0 and queue.pop() is c
    assert queue.take_in() is None  # a cancel applies once


# ---- workers on a Ray of so many CPUs --------------------------------------------------------
def test_the_worker_count_follows_the_cpus_the_episodes_and_the_endpoint_caps():
    cfg = load_config([])
    assert worker_count(cfg, RayConfig(cpus_per_worker=2.0), cpus=9) == 4
    assert worker_count(cfg, RayConfig(slots_per_worker=16), cpus=8, episodes=20) == 2  # 2 workers fill 20 episodes
    assert worker_count(cfg, RayConfig(num_workers=3, slots_per_worker=16), cpus=8, episodes=1) == 3  # asked for
    capped = load_config(["llm.max_concurrency=5", "user_llm.max_concurrency=2"])
    assert worker_count(capped, RayConfig(), cpus=8) == 2
    assert [worker_config(capped, i, 2).llm.max_concurrency for i in range(2)] == [3, 2]


def test_workers_that_cannot_fit_are_refused_naming_the_keys():
    with pytest.raises(
        InvalidInput, match=r"ray.num_workers=3 x ray.cpus_per_worker=2.0 needs 6 CPUs, but the Ray cluster has 4"
    ):
        worker_count(load_config([]), RayConfig(num_workers=3, cpus_per_worker=2.0), cpus=4)
    with pytest.raises(InvalidInput, match=r"needs 2 CPUs, but the local Ray has 1 CPUs \(ray.num_cpus=1\)"):
        check_local_fit(RayConfig(num_workers=2, num_cpus=1))
    check_local_fit(RayConfig(num_workers=64, address="auto"))  # a cluster is checked once joined
