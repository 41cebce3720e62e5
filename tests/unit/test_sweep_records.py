"""rollout.sweep.records: the typed sweep record, the episode log (streamed, corrupt lines, a cut tail)."""

import json

import pytest

from rollout.core.failures import Failure, FailureClass
from rollout.core.results import EpisodeResult
from rollout.sweep.records import EPISODES_FILE, EpisodeStore, SweepRecord, iter_records, peek_settled, read_records

pytestmark = pytest.mark.unit


def ok(task, sample=0, reward=1.0, domain="airline"):
    return SweepRecord(domain, task, sample, reward=reward)


def failed(task, cls=FailureClass.TIMEOUT, sample=0):
    return SweepRecord("airline", task, sample, failure=Failure(cls, "x"), attempts=3)


def test_record_round_trips_with_the_field_names_users_rely_on(tmp_path):
    result = EpisodeResult(
        domain="mock",
        task_id="3",
        sample=1,
        seed=7,
        reward=1.0,
        termination="user_stop",
        messages=[{"role": "assistant", "content": "hi"}],
        usage={"agent": {"requests": 2}},
    )
    rec = SweepRecord.from_result(result, attempts=2, earlier_failures=[Failure(FailureClass.MODEL_ERROR, "500")], worker=4)
    with EpisodeStore(tmp_path) as store:
        store.append(rec)
        store.append(failed("5"))
    line = json.loads((tmp_path / EPISODES_FILE).read_text().splitlines()[0])
    assert line["key"] == {"domain": "mock", "task_id": "3", "sample": 1}
    assert line["status"] == "ok" and line["reward"] == 1.0 and line["failure"] is None
    assert line["earlier_failures"] == [{"class": "model_error", "message": "500"}]
    assert {"termination", "reward_info", "messages", "usage", "durations", "attempts", "seed", "worker", "solo"} <= set(line)
    back = read_records(tmp_path)
    assert back[0] == rec and back[1].status == "failed" and back[1].failure_class == "timeout"


def test_corrupt_complete_lines_are_skipped_and_counted(tmp_path):
    good = json.dumps(ok("1").to_json())
    (tmp_path / EPISODES_FILE).write_text(
        "\n".join(
            [
                good,
                "{not json",
                '{"no": "key"}',
                good.replace('"1"', '"2"'),
                good.replace('"1"', '"3"').replace('"reward": 1.0', '"reward": 5.0'),  # no tau2 reward
                good.replace('"1"', '"4"').replace('"reward": 1.0', '"reward": -0.5'),
                '{"key": {"domain": "a"',  # cut short: no newline
            ]
        )
    )
    with EpisodeStore(tmp_path) as store:
        assert store.corrupt_lines == 4
        assert store.settled_keys() == {("airline", "1", 0), ("airline", "2", 0)}
    assert len(read_records(tmp_path)) == 2


def test_log_is_streamed_a_partial_tail_is_dropped_and_keys_follow_appends(tmp_path):
    lines = [json.dumps(ok(str(i)).to_json()) for i in range(50)]
    (tmp_path / EPISODES_FILE).write_text("\n".join(lines) + "\n" + lines[0][:-9])  # killed mid-line
    assert peek_settled(tmp_path) == {("airline", str(i), 0) for i in range(50)}
    records = iter_records(tmp_path)
    assert not isinstance(records, list) and next(records).task_id == "0"  # a stream, not a list
    with EpisodeStore(tmp_path) as store:
        assert store.corrupt_lines == 0 and len(store.settled_keys()) == 50
        store.append(ok("new"))
        assert ("airline", "new", 0) in store.settled_keys()
        assert [r.task_id for r in store.records()][-2:] == ["49", "new"]
    assert (tmp_path / EPISODES_FILE).read_text().endswith("\n")  # the cut line is gone, the new one whole


def test_transcripts_false_leaves_messages_out_of_the_log(tmp_path):
    rec = SweepRecord("mock", "1", 0, reward=1.0, messages=[{"role": "user", "content": "hi"}], reward_info={"reward": 1.0})
    with EpisodeStore(tmp_path / "without", transcripts=False) as store:
        store.append(rec)
    with EpisodeStore(tmp_path / "with") as store:
        store.append(rec)
    without, with_ = read_records(tmp_path / "without")[0], read_records(tmp_path / "with")[0]
    assert without.messages == [] and with_.messages == rec.messages
    assert without.reward == 1.0 and without.reward_info == {"reward": 1.0}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"reward": 5.0}, "reward: Input should be less than or equal to 1 (got 5.0)"),
        ({"reward": True}, "reward: Input should be a valid number"),
        ({"key": {"domain": "airline", "task_id": "1", "sample": "0"}}, "key.sample: Input should be a valid integer"),
        ({"messages": ["hi"]}, "messages.0: Input should be a valid dictionary"),
        ({"failure": {"class": "timeout", "message": "x"}}, "record: exactly one of reward and failure must be set"),
        ({"reward": None, "failure": {"class": "gone", "message": "x"}}, "failure.class: Input should be"),
        ({"steps": 2.5}, "steps: Input should be a valid integer"),
    ],
)
def test_a_line_that_is_not_a_record_is_refused_naming_the_field(change, message):
    line = {**ok("1").to_json(), **change}
    with pytest.raises(ValueError) as e:
        SweepRecord.from_json(line)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_every_field_of_a_record_survives_the_log(tmp_path):
    from dataclasses import fields

    from rollout.core.tokens import TurnRecord

    rec = SweepRecord(
        "mock",
        "7",
        2,
        seed=5,
        solo=True,
        tau2_domain="mock",
        reward=0.5,
        reward_info={"reward": 0.5},
        termination="max_steps",
        messages=[{"role": "user", "content": "hi"}],
        invalid_tool_calls=[{"name": "x"}],
        steps=3,
        tool_errors=1,
        usage={"agent": {"requests": 1}},
        durations={"total_s": 1.5},
        turns=[TurnRecord([1, 2], [3], [-0.5], "stop", weight_version=4, message_index=1), None],
        capture_errors=["call 1: no tokens"],
        budget_reached="max_prompt_tokens",
        episode_id="4f2a",
        attempts=2,
        earlier_failures=[Failure(FailureClass.ENV_ERROR, "gone")],
        worker=3,
    )
    blank = SweepRecord("airline", "0")
    assert [f.name for f in fields(SweepRecord) if getattr(rec, f.name) == getattr(blank, f.name)] == [
        "failure"
    ]  # all set but one: scored, so no failure
    with EpisodeStore(tmp_path) as store:
        store.append(rec)
    assert read_records(tmp_path) == [rec]
