"""Token records, the stitched view, train actions: read from what vLLM's server sends, split where drift is."""

import json

import pytest

from rollout.core.failures import Failure, FailureClass
from rollout.core.tokens import CaptureError, TurnRecord, capture_fields, turn_record
from rollout.scripted import chat_tokens
from rollout.trajectory import stitch, train_action

pytestmark = pytest.mark.unit


def answer(body: dict, message: dict, **kw) -> dict:
    """What the scripted server answers in vLLM's token mode (real tokenizer and template)."""
    status, data = chat_tokens.vllm_response(body, message, response_id="r", created=0, **kw)
    assert status == 200, data
    return data


def request(messages, tools=None, **fields):
    return {"model": "m", "messages": messages, **({"tools": tools} if tools else {}), **capture_fields("token_ids"), **fields}


SYSTEM = {"role": "system", "content": "You are a helpful agent."}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_order",
            "description": "An order.",
            "parameters": {"type": "object", "properties": {"id": {"type": "string"}}},
        },
    }
]
CALL = {
    "role": "assistant",
    "content": None,
    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_order", "arguments": '{"id": "7"}'}}],
}


def test_turn_record_is_what_the_server_sent():
    body = request([SYSTEM, {"role": "user", "content": "Where is order 7?"}], TOOLS)
    data = answer(body, CALL)
    turn = turn_record(data, "token_ids", weight_version=4)
    choice = data["choices"][0]
    assert turn.prompt_token_ids == data["prompt_token_ids"] and turn.completion_token_ids == choice["token_ids"]
    assert turn.completion_logprobs == [e["logprob"] for e in choice["logprobs"]["content"]]
    assert len(turn.completion_logprobs) == len(turn.completion_token_ids) and turn.weight_version == 4
    assert turn.finish_reason == "tool_calls"
    # the completion decodes to what the agent was given
    parsed = chat_tokens.parse_completion(chat_tokens.decode(turn.completion_token_ids))
    assert parsed["tool_calls"][0]["function"]["name"] == "get_order"
    assert json.loads(parsed["tool_calls"][0]["function"]["arguments"]) == {"id": "7"}


def test_tokens_as_ids_mode_reads_ids_from_logprob_tokens():
    body = {**request([SYSTEM, {"role": "user", "content": "hi"}]), **capture_fields("tokens_as_ids")}
    body.pop("return_token_ids")
    data = answer(body, {"role": "assistant", "content": "Hello there."})
    turn = turn_record(data, "tokens_as_ids")
    assert turn.prompt_token_ids is None
    assert chat_tokens.decode(turn.completion_token_ids) == "Hello there."


def test_a_server_that_ignores_the_options_is_named():
    body = request([SYSTEM, {"role": "user", "content": "hi"}])
    data = answer(body, {"role": "assistant", "content": "Hi."}, old_server=True)
    with pytest.raises(CaptureError, match="ignored `return_token_ids`"):
        turn_record(data, "token_ids")
    data = answer(
        {k: v for k, v in body.items() if k not in ("logprobs", "top_logprobs")}, {"role": "assistant", "content": "Hi."}
    )
    with pytest.raises(CaptureError, match="no logprobs.content"):
        turn_record(data, "token_ids")


def test_misaligned_logprobs_are_an_error_not_a_patch():
    body = request([SYSTEM, {"role": "user", "content": "hi"}])
    data = answer(body, {"role": "assistant", "content": "Hi."})
    data["choices"][0]["logprobs"]["content"].pop()
    with pytest.raises(CaptureError, match="completion ids but"):
        turn_record(data, "token_ids")


def conversation(drift=None):
    """Three calls of a conversation as an OpenAI client makes it: call, tool result, answer."""
    messages = [SYSTEM, {"role": "user", "content": "Where is order 7?"}]
    turns = []
    for i, reply in enumerate([CALL, CALL, {"role": "assistant", "content": "It ships tomorrow."}]):
        body = request(messages, TOOLS)
        data = answer(body, reply, drift=drift if i == 1 else None)
        turn = turn_record(data, "token_ids")
        message = data["choices"][0]["message"]
        turn.message_index = len(messages)
        turns.append(turn)
        messages = messages + [{k: v for k, v in message.items() if k in ("role", "content", "tool_calls")}]
        if message.get("tool_calls"):
            messages.append({"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": '{"status": "shipped"}'})
    return turns


def test_a_clean_conversation_is_one_sequence_with_the_policys_tokens_masked_in():
    turns = conversation()
    [segment], drift = stitch(turns)
    assert (drift.clean, drift.split) == (2, 0)
    assert segment.prompt_ids == turns[0].prompt_token_ids
    full = segment.prompt_ids + segment.response_ids
    assert full[: len(turns[2].prompt_token_ids)] == turns[2].prompt_token_ids  # the last prompt is a prefix
    assert len(segment.response_mask) == len(segment.response_ids) == len(segment.response_logprobs)
    policy = [t for t, m in zip(segment.response_ids, segment.response_mask) if m]
    assert policy == [i for t in turns for i in t.completion_token_ids]  # exactly the policy's tokens
    logprobs = [lp for lp, m in zip(segment.response_logprobs, segment.response_mask) if m]
    assert logprobs == [lp for t in turns for lp in t.completion_logprobs]
    assert all(lp == 0.0 for lp, m in zip(segment.response_logprobs, segment.response_mask) if not m)
    # and the sequence re-tokenizes to the same ids
    assert chat_tokens.encode(chat_tokens.decode(full, skip_special_tokens=False)) == full


@pytest.mark.parametrize("drift", list(chat_tokens.DRIFT_MODES))
def test_injected_drift_splits_the_sequence_and_is_counted(drift):
    turns = conversation(drift)
    segments, counted = stitch(turns)
    assert counted.split >= 1 and len(segments) == 1 + counted.split
    assert [i for s in segments for i in s.turns] == [0, 1, 2]


def test_regenerated_empty_replies_and_absent_tokens():
    turns = conversation()
    empty = TurnRecord(
        prompt_token_ids=turns[1].prompt_token_ids,
        completion_token_ids=[4098],
        completion_logprobs=[-0.1],
        finish_reason="stop",
        message_index=None,
    )
    segments, drift = stitch([turns[0], empty, turns[1], turns[2]])
    assert len(segments) == 1 and drift.split == 0  # the regenerated reply never reached the conversation
    segments, drift = stitch([turns[0], None, turns[2]])
    assert len(segments) == 2 and drift.split == 1  # a call whose tokens are absent breaks the sequence


@pytest.mark.parametrize(
    "failure, action",
    [
        (None, "train"),
        (Failure(FailureClass.USER_SIM_ERROR, "HTTP 500"), "mask"),
        (Failure(FailureClass.TIMEOUT, "episode exceeded"), "mask"),
        (Failure(FailureClass.ENV_ERROR, "aenv"), "mask"),
        (Failure(FailureClass.MODEL_ERROR, "HTTP 503: overloaded"), "mask"),
        (Failure(FailureClass.MODEL_ERROR, "HTTP 400: This model's maximum context length is 32768 tokens"), "train_zero"),
        (Failure(FailureClass.WORKER_DIED, "worker died"), "retry"),
        (Failure(FailureClass.INVALID_INPUT, "unknown task"), "drop"),
        (Failure(FailureClass.CANCELLED, "cancelled"), "drop"),
    ],
)
def test_train_actions(failure, action):
    assert train_action(failure) == action


def test_sglang_chat_answers_carry_their_ids_on_the_choice():
    """SGLang's chat endpoint with return_token_ids puts prompt_token_ids and response_token_ids on
    the choice (vLLM: prompt_token_ids at the top level, token_ids on the choice)."""
    entries = [{"token": "a", "logprob": -0.5}, {"token": "b", "logprob": -0.25}]
    choice = {"message": {"role": "assistant", "content": "ab"}, "finish_reason": "stop", "logprobs": {"content": entries},
              "prompt_token_ids": [1, 2, 3], "response_token_ids": [7, 9]}  # fmt: skip
    turn = turn_record({"choices": [choice]}, "token_ids")
    assert (turn.prompt_token_ids, turn.completion_token_ids, turn.completion_logprobs) == ([1, 2, 3], [7, 9], [-0.5, -0.25])


def test_per_token_versions_and_call_counts_survive_every_serialisation(tmp_path):
    """A trajectory's oldest / newest version come from its calls' per-token versions, and the
    versions and counts survive pickling (Ray), a call's dict and the sweep's episode log."""
    import pickle

    from rollout.core.results import EpisodeResult
    from rollout.sweep.records import EpisodeStore, SweepRecord, read_records
    from rollout.trajectory import Trajectory

    turns = [
        TurnRecord([1, 2], [3, 4, 5], [-0.1, -0.2, -0.3], "stop", completion_versions=[4, 4, 5], continued=1),
        TurnRecord([1, 2, 3], [6], [-0.5], "tool_calls", completion_versions=[6], restarted=2),
        None,
    ]
    result = EpisodeResult("mock", "1", reward=1.0, turns=turns)
    t = Trajectory.of(result, group_id="g")
    assert (t.oldest_version, t.newest_version) == (4, 6)
    assert Trajectory.of(EpisodeResult("mock", "1", reward=1.0), group_id="g").oldest_version is None
    assert pickle.loads(pickle.dumps(t)).result.turns == turns
    assert [TurnRecord.from_dict(json.loads(json.dumps(x.to_dict()))) for x in turns[:2]] == turns[:2]
    with EpisodeStore(tmp_path) as store:
        store.append(SweepRecord.from_result(result))
    assert read_records(tmp_path)[0].turns == turns
