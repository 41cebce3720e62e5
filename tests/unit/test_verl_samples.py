"""What verl trains of a trajectory, on v1 and v0 (rollout/trainers/verl_samples.py): without verl."""

import pytest

from rollout.core.failures import Failure, FailureClass
from rollout.core.results import EpisodeResult
from rollout.core.tokens import TurnRecord
from rollout.pool import derive_seed
from rollout.trainers.verl_samples import Budget, episode_seed, plan, sample_of, served_versions
from rollout.trajectory import Trajectory

pytestmark = pytest.mark.unit

BUDGET = Budget(prompt_length=8, response_length=8)


def turn(prompt, completion, index, *, version=3, served=None):
    return TurnRecord(
        prompt_token_ids=list(prompt),
        completion_token_ids=list(completion),
        completion_logprobs=[-0.5] * len(completion),
        finish_reason="stop",
        weight_version=version,
        message_index=index,
        served_version=served,
    )


def trajectory(turns, *, reward=1.0, failure=None):
    result = EpisodeResult(domain="airline", task_id="12", sample=2, reward=None if failure else reward, failure=failure)
    result.turns = turns
    return Trajectory.of(result, group_id="uid-0")


CLEAN = [turn([1, 2, 3], [4, 5], 1), turn([1, 2, 3, 4, 5, 6], [7], 3)]  # the second prompt extends the first call
SPLIT = [turn([1, 2, 3], [4, 5], 1), turn([1, 2, 9, 9, 6], [7], 3)]  # re-rendered history: a second segment
OVERFLOW = Failure(FailureClass.MODEL_ERROR, "This model's maximum context length is 32768 tokens")


@pytest.mark.parametrize("v1", [True, False])
def test_a_scored_clean_episode_is_one_sequence_with_tau2s_reward(v1):
    p = plan(trajectory(CLEAN, reward=1.0), BUDGET, v1=v1)
    assert p.dropped == "" and p.reward == 1.0 and len(p.segments) == 1
    [s] = p.segments
    assert s.prompt_ids == [1, 2, 3] and s.response_ids == [4, 5, 6, 7] and s.response_mask == [1, 1, 0, 1]


def test_a_split_episode_is_one_output_per_segment_on_v1_and_dropped_on_v0():
    t = trajectory(SPLIT, reward=1.0)
    v1 = plan(t, BUDGET, v1=True)
    assert [s.prompt_ids for s in v1.segments] == [[1, 2, 3], [1, 2, 9, 9, 6]] and v1.reward == 1.0 and not v1.dropped
    v0 = plan(t, BUDGET, v1=False)
    assert v0.segments == [] and v0.dropped.startswith("split by drift (1 boundaries)") and not v0.over_budget


@pytest.mark.parametrize("v1", [True, False])
def test_a_failed_episode_has_nothing_to_train(v1):
    failure = Failure(FailureClass.USER_SIM_ERROR, "the user simulator's endpoint refused")
    p = plan(trajectory(CLEAN[:1], failure=failure), BUDGET, v1=v1)
    assert p.segments == [] and p.dropped == FailureClass.USER_SIM_ERROR.value
    assert plan(None, BUDGET, v1=v1).dropped == "no trajectory"


@pytest.mark.parametrize("v1", [True, False])
def test_a_context_overflow_trains_what_happened_with_zero(v1):
    t = trajectory(CLEAN, failure=OVERFLOW)
    assert t.train_action == "train_zero"
    p = plan(t, BUDGET, v1=v1)
    assert len(p.segments) == 1 and p.reward == 0.0 and not p.dropped
    assert plan(trajectory([], failure=OVERFLOW), BUDGET, v1=v1).dropped == "tokens absent"


@pytest.mark.parametrize("v1", [True, False])
def test_a_sequence_over_the_budget_is_dropped_never_cut(v1):
    t = trajectory(CLEAN)
    short_response = plan(t, Budget(prompt_length=8, response_length=3), v1=v1)
    assert short_response.segments == [] and short_response.over_budget
    assert "response of 4 tokens > response_length 3" in short_response.dropped
    short_prompt = plan(t, Budget(prompt_length=2, response_length=8), v1=v1)
    assert short_prompt.segments == [] and short_prompt.over_budget and "prompt of 3 tokens" in short_prompt.dropped
    assert plan(t, Budget(prompt_length=3, response_length=4), v1=v1).segments  # exactly the budget fits


def test_versions_come_from_the_calls_engine_first():
    t = trajectory([turn([1, 2, 3], [4, 5], 1, version=3, served="5"), turn([1, 2, 3, 4, 5, 6], [7], 3, version=3, served="6")])
    assert served_versions(t, fallback=9) == (5, 6)  # the engine's report wins over the request's tag and the row
    tagged = trajectory([turn([1, 2, 3], [4, 5], 1, version=3, served="default"), turn([1, 2, 3, 4, 5, 6], [7], 3, version=4)])
    assert served_versions(tagged, fallback=9) == (3, 4)  # a non-integer report ("default") says nothing
    assert served_versions(trajectory([]), fallback=9) == (9, 9)
    assert served_versions(None, fallback=None) == (-1, -1)


def test_samples_of_a_group_never_share_a_number():
    assert sample_of({"session_id": 3, "priority": 17}) == (3, True)  # v1
    assert sample_of({"priority": 17}) == (17, True)  # v0 under AgentLoopManager: the batch position
    # a v0 group split across two workers: positions are batch-wide, so the numbers stay distinct
    batch = [{"uid": "u", "priority": i} for i in range(8)]
    worker_a, worker_b = batch[:4], batch[4:]
    assert len({sample_of(r)[0] for r in worker_a} | {sample_of(r)[0] for r in worker_b}) == 8
    drawn = [sample_of({"uid": "u"}) for _ in range(1000)]  # no position: random, not reproducible
    assert len({s for s, _ in drawn}) == 1000 and not any(r for _, r in drawn)


def test_the_seed_varies_with_the_step_and_reproduces_within_it():
    seeds = {episode_seed(0, step, "airline", "12", 1) for step in range(50)}
    assert len(seeds) == 50
    assert episode_seed(0, 7, "airline", "12", 1) == episode_seed(0, 7, "airline", "12", 1)
    assert episode_seed(0, 7, "airline", "12", 1) != episode_seed(0, 7, "airline", "12", 2)
    assert episode_seed(0, 7, "airline", "12", 1) != episode_seed(1, 7, "airline", "12", 1)
    assert episode_seed(0, None, "airline", "12", 1) == derive_seed(0, "airline", "12", 1)


def test_per_token_versions_span_a_call_continued_across_a_weight_swap():
    """A call cut by a swap and continued has tokens of two versions: verl gets the span."""
    cut = turn([1, 2, 3], [4, 5, 6], 1, version=3, served="7")
    cut.completion_versions = [3, 3, 4]  # the engine swapped from 3 to 4 after two tokens
    later = turn([1, 2, 3, 4, 5, 6, 7], [8], 3, version=4)
    later.completion_versions = [4]
    assert served_versions(trajectory([cut, later]), fallback=9) == (3, 4)  # per-token versions win
