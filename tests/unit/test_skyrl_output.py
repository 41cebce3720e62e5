"""SkyRL's rows of the pool's trajectories (no SkyRL import): what a failure, a split, an overflow and credit become.

The same layouts go through SkyRL 0.3.0's own validation, merge and advantage code in
.ci/skyrl/check_generator.py; these tests pin the rows themselves."""

import re

import pytest

from rollout.core.failures import Failure, FailureClass
from rollout.core.results import EpisodeResult
from rollout.core.tokens import TurnRecord
from rollout.trainers.skyrl_output import Layout, generator_output, stop_reason
from rollout.trajectory import Trajectory
from rollout.trajectory.credit import Credit

pytestmark = pytest.mark.unit

CLEAN = [([1, 2, 3], [10, 11]), ([1, 2, 3, 10, 11, 4, 5], [12, 13])]
SPLIT = [([1, 2, 3], [20, 21]), ([1, 2, 3, 99, 4, 5], [22])]
USER_SIM = (FailureClass.USER_SIM_ERROR, "user simulator: HTTP 500")
OVERFLOW = (FailureClass.MODEL_ERROR, "This model's maximum context length is 4096 tokens")


def episode(group, rep, reward, calls, failure=None, finish="stop", served=None):
    turns = [
        TurnRecord(
            prompt_token_ids=list(p),
            completion_token_ids=list(c),
            completion_logprobs=[-0.5] * len(c),
            finish_reason=finish if n == len(calls) - 1 else "tool_calls",
            weight_version=3,
            message_index=2 * n + 1,
            served_version=served,
        )
        for n, (p, c) in enumerate(calls)
    ]
    result = EpisodeResult(
        "airline", "1", sample=rep, reward=reward, failure=None if failure is None else Failure(*failure), turns=turns
    )
    return Trajectory.of(result, group_id=group, tags={"instance_id": group, "repetition_id": rep})


def batch():
    return [
        episode("a", 0, 1.0, CLEAN),
        episode("a", 1, 0.0, SPLIT),
        episode("a", 2, None, CLEAN[:1], failure=USER_SIM),
        episode("b", 0, 1.0, CLEAN[:1]),
        episode("b", 1, None, [], failure=OVERFLOW),
        episode("b", 2, 0.0, CLEAN),
    ]


def rows_of(out, group):
    return [i for i, tid in enumerate(out["trajectory_ids"]) if tid[0] == group]


def test_step_wise_without_group_masking_leaves_the_failure_out_of_its_group():
    out = generator_output(batch(), Layout(step_wise=True, mask_group_on_failure=False))
    ids = [tid for tid in out["trajectory_ids"]]
    assert ("a", 2) not in ids  # no row, so no number in group a's statistics
    assert ids[:4] == [("a", 0), ("a", 0), ("a", 1), ("a", 1)]  # the split episode trains step by step
    last = [(tid, r) for tid, r, end in zip(ids, out["rewards"], out["is_last_step"]) if end]
    assert last == [(("a", 0), 1.0), (("a", 1), 0.0), (("b", 0), 1.0), (("b", 1), 0.0), (("b", 2), 0.0)]
    # the overflow trains with 0: a zero-mask row with reward 0 that stays in group b
    overflow = ids.index(("b", 1))
    assert out["loss_masks"][overflow] == [0] and out["stop_reasons"][overflow] == "context_length"
    assert out["rollout_metrics"]["tau2/left_out"] == 1.0 and out["rollout_metrics"]["tau2/masked_groups"] == 0.0


def test_a_group_with_nothing_to_train_keeps_placeholders_that_meet_only_each_other():
    trajectories = [episode("a", r, None, CLEAN, failure=USER_SIM) for r in range(2)] + [episode("b", 0, 1.0, CLEAN)]
    out = generator_output(trajectories, Layout(step_wise=True, mask_group_on_failure=False))
    assert out["trajectory_ids"][:2] == [("a", 0), ("a", 1)]
    assert out["loss_masks"][:2] == [[0], [0]] and out["stop_reasons"][:2] == ["error", "error"]
    assert out["rollout_metrics"]["tau2/masked_groups"] == 1.0


@pytest.mark.parametrize("step_wise", [True, False])
def test_by_default_a_failure_masks_its_whole_group(step_wise):
    out = generator_output(batch(), Layout(step_wise=step_wise))
    group = rows_of(out, "a")
    assert len(group) == 3 and all(out["loss_masks"][i] == [0] and out["stop_reasons"][i] == "error" for i in group)
    assert all(out["rewards"][i] == 0.0 for i in group)
    assert sum(map(sum, (out["loss_masks"][i] for i in rows_of(out, "b")))) > 0


def test_stitched_trains_clean_episodes_as_one_row_and_masks_a_split_group():
    trajectories = [episode("a", 0, 1.0, CLEAN), episode("a", 1, 0.0, SPLIT), episode("b", 0, 1.0, CLEAN)]
    out = generator_output(trajectories, Layout())
    assert "is_last_step" not in out and len(out["response_ids"]) == 3
    assert out["loss_masks"][0] == [0] and out["loss_masks"][1] == [0]  # the split masks group a
    assert out["response_ids"][2] == [10, 11, 4, 5, 12, 13] and out["loss_masks"][2] == [1, 1, 0, 0, 1, 1]
    assert out["rewards"][2] == 1.0 and out["rollout_metrics"]["tau2/split_masked"] == 1.0


def test_credit_puts_each_calls_share_on_its_last_token_and_the_reward_on_the_episodes_last():
    t = episode("a", 0, 1.0, CLEAN)
    t.credit = Credit(actions=[0.5, 0.25])
    out = generator_output([t], Layout(credit=True, estimator="reinforce++"))
    assert out["rewards"] == [[0.0, 0.5, 0.0, 0.0, 0.0, 1.25]]


@pytest.mark.parametrize(
    "layout, named",
    [
        ({"step_wise": True, "credit": True, "estimator": "reinforce++"}, "last step"),
        ({"credit": True, "estimator": "grpo"}, "advantage_estimator='grpo'"),
        ({"credit": True, "estimator": "rloo"}, "advantage_estimator='rloo'"),
        ({"mask_group_on_failure": False}, "placeholder reward would enter its group's mean"),
    ],
)
def test_layouts_skyrl_would_not_train_as_meant_are_refused(layout, named):
    with pytest.raises(ValueError, match=re.escape(named)):
        Layout(**layout)


def test_finish_reasons_are_the_engines_one_to_one_and_versions_reach_the_metrics():
    assert [stop_reason(r) for r in ("stop", "tool_calls", "length", "abort", None)] == [
        "stop",
        "stop",
        "length",
        "abort",
        "unknown",
    ]
    trajectories = [
        episode("a", 0, 1.0, CLEAN, finish="abort", served="5"),
        episode("a", 1, 0.0, CLEAN[:1], finish="length", served="4"),
    ]
    out = generator_output(trajectories, Layout(step_wise=True))
    assert out["stop_reasons"] == ["stop", "abort", "length"]
    m = out["rollout_metrics"]
    assert (m["tau2/weight_version_min"], m["tau2/weight_version_max"]) == (3.0, 3.0)
    assert (m["tau2/served_version_min"], m["tau2/served_version_max"]) == (4.0, 5.0)
    assert (m["tau2/finish_stop"], m["tau2/finish_abort"], m["tau2/finish_length"]) == (1.0, 1.0, 1.0)
