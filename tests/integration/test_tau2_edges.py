"""Edge behaviour against tau2's own runner: the same scripted decisions, the same requests and ends.

Each case plays one task with tau2's `run_task` and with this project (tests/parity.py),
perturbing the scripted server the same way for both, and compares what tau2 and we send
and how the episode ends. Where tau2's runner raises, ours ends as tau2's
`--skip-failed-samples` would score it, or as a classified failure.
"""

from __future__ import annotations

import pytest

from rollout.env.domains import load_domain
from rollout.scripted.gold import gold_script
from rollout.scripted.policies import PREAMBLE
from tests.parity import call_ids, compare_streams, run_ours, run_tau2, served_call_ids

TEL = "[service_issue]overdue_bill_suspension|unseat_sim_card[PERSONA:Easy]"
EMPTY = {"role": "assistant", "content": ""}


def calls(*specs):
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": i, "type": "function", "function": {"name": n, "arguments": a}} for i, n, a in specs],
    }


def both(domain, task_id, *, solo=False, setup=None, max_steps=200):
    return (
        run_tau2(domain, task_id, solo=solo, setup=setup, max_steps=max_steps),
        run_ours(domain, task_id, solo=solo, setup=setup, max_steps=max_steps),
    )


def assert_same_requests(tau2, ours, roles=("agent", "user")):
    diffs = compare_streams(tau2.requests, ours.requests, roles)
    assert not diffs, "\n".join(diffs[:20])


def test_stop_landing_on_max_steps_is_max_steps():
    """airline 5 ends with the user's stop on step 5: with max_steps 5, tau2's limit wins."""
    tau2, ours = both("airline", "5", max_steps=5)
    assert (tau2.termination, tau2.reward) == (ours.termination, ours.reward) == ("max_steps", 0.0)
    assert_same_requests(tau2, ours)


@pytest.mark.parametrize("max_steps", [2, 3, 4])
def test_solo_step_counting(max_steps):
    """tau2 generates the first solo message in `initialize` and does not count it."""
    tau2, ours = both("telecom", TEL, solo=True, max_steps=max_steps)
    assert tau2.count("agent") == ours.count("agent") and tau2.termination == ours.termination == "max_steps"
    assert_same_requests(tau2, ours)


def test_unknown_tool_is_answered_by_tau2_in_call_order():
    unknown = calls(("call_a", "no_such_tool", "{}"), ("call_b", "get_user_details", '{"user_id": "mei_brown_7075"}'))
    tau2, ours = both("airline", "5", setup=lambda s: s.inject("agent", unknown))
    assert_same_requests(tau2, ours)
    second = [r["body"]["messages"] for r in ours.requests if r["role"] == "agent"][1]
    assert [m.get("content") for m in second if m["role"] == "tool"][0] == "Error: Tool 'no_such_tool' not found."
    assert ours.reward == tau2.reward == 1.0


def test_history_ending_with_an_agent_message_reaches_the_user_once():
    tau2, ours = both("mock", "update_task_with_message_history")
    assert_same_requests(tau2, ours)
    first = [r["body"]["messages"] for r in ours.requests if r["role"] == "user"][0]
    last_agent = first[-1]["content"]
    assert [m.get("content") for m in first].count(last_agent) == 1
    assert ours.reward == tau2.reward == 1.0


def test_one_empty_agent_reply_is_regenerated():
    tau2, ours = both("airline", "5", setup=lambda s: s.set_faults(mode="empty", count=1, role="agent"))
    assert tau2.reward == ours.reward == 1.0
    plain = run_ours("airline", "5")
    assert ours.count("agent") == tau2.count("agent") == plain.count("agent") + 1
    assert_same_requests(tau2, ours)


def test_four_empty_agent_replies():
    """tau2's runner raises (the 4th empty message fails validation); ours: agent_error, 0.0."""
    tau2, ours = both("airline", "5", setup=lambda s: s.set_faults(mode="empty", count=4, role="agent"))
    assert tau2.failure is not None and tau2.reward is None
    assert (ours.termination, ours.reward, ours.failure) == ("agent_error", 0.0, None)
    assert tau2.count("agent") == ours.count("agent") == 4
    assert_same_requests(tau2, ours)


def test_four_empty_user_replies():
    """tau2's runner raises; ours: a classified user_sim_error (not a reward)."""
    tau2, ours = both("airline", "5", setup=lambda s: s.set_faults(mode="empty", count=4, role="user"))
    assert tau2.failure is not None
    assert ours.reward is None and ours.failure.startswith("user_sim_error")
    assert tau2.count("user") == ours.count("user") == 4
    assert_same_requests(tau2, ours)


def test_malformed_tool_json():
    """tau2's runner raises on arguments that are not JSON; ours ends as agent_error, 0.0 (the default
    episode.invalid_tool_args=end: what tau2's --skip-failed-samples scores)."""
    tau2, ours = both("airline", "5", setup=lambda s: s.set_faults(mode="malformed_tool_json", count=1, role="agent"))
    assert tau2.failure is not None and ("JSON" in tau2.failure or "Expecting" in tau2.failure), tau2.failure
    assert (ours.termination, ours.reward, ours.failure) == ("agent_error", 0.0, None)
    assert tau2.count("agent") == ours.count("agent") == 1
    assert_same_requests(tau2, ours)


@pytest.mark.parametrize(
    "mode,domain,task_id", [("fixed_ids", "airline", "7"), ("fixed_ids", "telecom", TEL), ("duplicate_ids", "airline", "5")]
)
def test_tool_call_ids_as_the_server_sends_them(mode, domain, task_id):
    """Ids numbered from call_0 in every response, or one id on two calls: tau2 plays on, and so
    do we, recording (and showing the model) the ids the server sent."""
    tau2, ours = both(domain, task_id, setup=lambda s: s.set_faults(mode=mode, count=-1, role="any"))
    assert tau2.reward == ours.reward == 1.0, ours.failure
    assert_same_requests(tau2, ours)
    served = served_call_ids(ours.requests, "agent")
    assert call_ids(ours.messages, "assistant") == served
    assert len(set(served)) < len(served)  # ids really repeat
    assert call_ids(ours.messages, "user") == served_call_ids(ours.requests, "user")  # the user's device calls


# ---- the shapes real models reply in ---------------------------------------------------------
def agent_histories(run) -> list[list[dict]]:
    return [r["body"]["messages"] for r in run.requests if r["role"] == "agent"]


@pytest.mark.parametrize(
    "domain,task_id,style",
    [
        ("retail", "2", "text_with_calls"),
        ("retail", "2", "empty_content"),
        ("retail", "2", "mixed"),
        ("telecom", TEL, "mixed"),  # with the user's device tools on the user side
    ],
)
def test_text_beside_tool_calls_is_one_assistant_message_as_tau2_sends_it(domain, task_id, style):
    """A sentence before the calls, or `""` beside them: tau2 shows the model one assistant
    message with both (and keeps `""`); so do we, request for request."""
    tau2, ours = both(domain, task_id, setup=lambda s: s.set_reply_style(style))
    assert tau2.failure is None and ours.failure is None, (tau2.failure, ours.failure)
    assert (ours.reward, ours.termination) == (tau2.reward, tau2.termination) == (1.0, "user_stop")
    assert_same_requests(tau2, ours)
    history = agent_histories(ours)[-1]
    with_calls = [m for m in history if m["role"] == "assistant" and m.get("tool_calls")]
    contents = {m.get("content") for m in with_calls}
    assert contents == {"text_with_calls": {PREAMBLE}, "empty_content": {""}, "mixed": {PREAMBLE, ""}}[style], contents
    roles = [m["role"] for m in history]
    assert not any(a == b == "assistant" for a, b in zip(roles, roles[1:])), roles


def test_several_tool_calls_with_text_in_one_reply():
    """Two calls and a sentence in one reply (results in call order), then the rest of the play."""
    script = gold_script(load_domain("retail").task("2"), solo=False)
    merged = [{"calls": script[1:3], "text": "I'll check both products."}, *script[3:]]
    tau2, ours = both("retail", "2", setup=lambda s: s.set_script("retail", "2", [script[0], *merged]))
    assert (ours.reward, ours.termination) == (tau2.reward, tau2.termination) == (1.0, "user_stop")
    assert_same_requests(tau2, ours)
    history = agent_histories(ours)[-1]
    [double] = [m for m in history if m["role"] == "assistant" and len(m.get("tool_calls") or []) == 2]
    assert double["content"] == "I'll check both products."


@pytest.mark.parametrize("max_steps", [1, 2])
def test_max_steps_reached_by_the_users_first_message_sends_no_agent_request(max_steps):
    """The user's first message is step 1: with max_steps=1 tau2's agent never generates."""
    tau2, ours = both("airline", "12", max_steps=max_steps)
    assert (tau2.termination, ours.termination) == ("max_steps", "max_steps")
    assert tau2.count("agent") == ours.count("agent") == max_steps - 1
    assert_same_requests(tau2, ours)
