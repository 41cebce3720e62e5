"""The scripted server's token mode over HTTP: vLLM's token fields for a Qwen2.5-style model
(chat_tokens.py), drift, an old vLLM, and the default mode left as it was."""

import json

import httpx
import openai
import pytest

from rollout.env.domains import load_domain
from rollout.scripted import ScriptedServer
from rollout.scripted import chat_tokens as ct
from tests.helpers import run_domain, scripted_config

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_reservation_details",
            "description": "Get a reservation.",
            "parameters": {
                "type": "object",
                "properties": {"reservation_id": {"type": "string"}},
                "required": ["reservation_id"],
            },
            "strict": False,
        },
    },
    {
        "type": "function",
        "function": {
            "name": "cancel_reservation",
            "description": "Cancel a reservation.",
            "parameters": {
                "type": "object",
                "properties": {"reservation_id": {"type": "string"}},
                "required": ["reservation_id"],
            },
            "strict": False,
        },
    },
]
START = [{"role": "system", "content": "You are a test agent."}, {"role": "user", "content": "Cancel 4WQ150 and ZFA04Y."}]


def tool_call(call_id, name, args):
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}


REPLIES = [  # text and tool calls, mixed; no text beside a call (that drifts with vLLM + Qwen2.5 too)
    {"role": "assistant", "content": "Let me look at both reservations."},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            tool_call("call_1", "get_reservation_details", {"reservation_id": "4WQ150"}),
            tool_call("call_2", "get_reservation_details", {"reservation_id": "ZFA04Y"}),
        ],
    },
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [tool_call("call_3", "cancel_reservation", {"reservation_id": "4WQ150"})],
    },
    {"role": "assistant", "content": "Both are cancelled. Anything else?"},
]


def converse(server, replies, **extra):
    """Play `replies` through the server with the openai client as an agent would, building each
    next request from the returned message; the raw responses."""
    client = openai.OpenAI(base_url=server.url, api_key="sk-test", max_retries=0)
    messages, raw = list(START), []
    for i, reply in enumerate(replies):
        server.inject("any", reply)
        resp = client.chat.completions.create(
            model="qwen", messages=messages, tools=TOOLS, extra_body={"return_token_ids": True, "logprobs": True, **extra}
        )
        raw.append(resp.model_dump())
        msg = resp.choices[0].message
        sent = {"role": "assistant", "content": msg.content}
        if msg.tool_calls:
            sent["tool_calls"] = [
                {"id": tc.id, "type": "function", "function": {"name": tc.function.name, "arguments": tc.function.arguments}}
                for tc in msg.tool_calls
            ]
        messages.append(sent)
        for tc in msg.tool_calls or []:
            messages.append({"role": "tool", "tool_call_id": tc.id, "content": json.dumps({"status": "ok", "id": tc.id})})
        if not msg.tool_calls:
            messages.append({"role": "user", "content": f"Thanks ({i})."})
    server.inject("any", {"role": "assistant", "content": "Bye."})
    raw.append(
        client.chat.completions.create(
            model="qwen", messages=messages, tools=TOOLS, extra_body={"return_token_ids": True}
        ).model_dump()
    )
    return raw


def extends(raw) -> list[bool]:
    return [
        nxt["prompt_token_ids"][: len(r["prompt_token_ids"]) + len(r["choices"][0]["token_ids"])]
        == r["prompt_token_ids"] + r["choices"][0]["token_ids"]
        for r, nxt in zip(raw, raw[1:])
    ]


def test_token_mode_conversation_prompts_extend_previous_prompt_and_completion(server):
    raw = converse(server, REPLIES)
    assert all(extends(raw))
    for r, played in zip(raw, REPLIES):
        choice = r["choices"][0]
        generated, ids = ct.completion(played)
        assert choice["token_ids"] == ids and ct.decode(ids) == generated
        assert choice["token_ids"][-1] == ct.eos_id()
        assert len(choice["logprobs"]["content"]) == len(choice["token_ids"])
        assert all(e["logprob"] <= 0 for e in choice["logprobs"]["content"])
        assert r["usage"]["prompt_tokens"] == len(r["prompt_token_ids"])
        assert r["usage"]["completion_tokens"] == len(choice["token_ids"])
        assert r["usage"]["total_tokens"] == r["usage"]["prompt_tokens"] + r["usage"]["completion_tokens"]
        assert choice["finish_reason"] == ("tool_calls" if played.get("tool_calls") else "stop")
        if played.get("tool_calls"):
            assert choice["message"]["content"] is None
            assert [tc["id"] for tc in choice["message"]["tool_calls"]] == [tc["id"] for tc in played["tool_calls"]]
        else:
            assert choice["message"]["content"] == played["content"] == ct.decode(choice["token_ids"])


@pytest.mark.parametrize("drift", ct.DRIFT_MODES)
def test_drift_switch_breaks_the_extension(server, drift):
    admin = httpx.post(server.url.removesuffix("/v1") + "/admin/tokens", json={"drift": drift})
    assert admin.status_code == 200
    raw = converse(server, REPLIES)
    assert not all(extends(raw))
    httpx.post(server.url.removesuffix("/v1") + "/admin/tokens", json={"drift": None})
    assert all(extends(converse(server, REPLIES)))


def test_text_beside_a_tool_call_drifts_without_any_switch(server):
    both = {
        "role": "assistant",
        "content": "Cancelling now.",
        "tool_calls": [tool_call("c1", "cancel_reservation", {"reservation_id": "x"})],
    }
    raw = converse(server, [both, REPLIES[-1]])
    assert raw[0]["choices"][0]["message"]["content"] == "Cancelling now.\n"  # as vLLM's hermes parser returns it
    assert extends(raw) == [False, True]


def test_old_vllm_ignores_return_token_ids(server):
    base = server.url.removesuffix("/v1")
    assert httpx.post(base + "/admin/tokens", json={"old_vllm": True}).status_code == 200
    server.inject("any", REPLIES[0])
    r = httpx.post(
        server.url + "/chat/completions",
        json={"model": "q", "messages": START, "return_token_ids": True, "logprobs": True, "return_tokens_as_token_ids": True},
    ).json()
    assert "prompt_token_ids" not in r and "token_ids" not in r["choices"][0]
    assert all(e["token"].startswith("token_id:") for e in r["choices"][0]["logprobs"]["content"])
    assert httpx.post(base + "/admin/tokens", json={"drift": "nope"}).status_code == 400


def test_max_tokens_truncates_with_finish_reason_length(server):
    server.inject("any", REPLIES[1])
    r = httpx.post(
        server.url + "/chat/completions",
        json={"model": "q", "messages": START, "tools": TOOLS, "return_token_ids": True, "max_tokens": 6},
    ).json()
    choice = r["choices"][0]
    assert choice["finish_reason"] == "length" and len(choice["token_ids"]) == 6 and r["usage"]["completion_tokens"] == 6
    assert choice["message"]["tool_calls"] == [] and choice["message"]["content"] == ct.decode(choice["token_ids"])


def test_default_mode_is_unchanged(server):
    server.inject("any", REPLIES[1])
    r = httpx.post(server.url + "/chat/completions", json={"model": "q", "messages": START, "tools": TOOLS}).json()
    assert list(r) == ["id", "object", "created", "model", "choices", "usage"]
    assert r["choices"] == [{"index": 0, "message": REPLIES[1], "finish_reason": "tool_calls"}]
    assert r["usage"] == {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}


def test_a_real_tau2_episode_replayed_in_token_mode_extends_turn_by_turn():
    """The oracle plays an airline task with the scripted user; each recorded request is sent
    again in token mode, and every next request of the same role extends the last one."""
    with ScriptedServer("oracle") as server:
        assets = load_domain("airline")
        task = next(t for t in assets.task_ids("base") if len(assets.task(t).evaluation_criteria.actions or []) >= 4)
        [result] = run_domain(scripted_config(server), "airline", [task], solo=False)
        assert result.reward == 1.0
        recorded = [(e["role"], e["body"]) for e in server.requests]
        for role in ("agent", "user"):
            bodies = [b for r, b in recorded if r == role]
            assert len(bodies) >= 2
            raw = []
            for body in bodies:
                resp = httpx.post(server.url + "/chat/completions", json={**body, "return_token_ids": True}, timeout=30)
                assert resp.status_code == 200, resp.text
                raw.append(resp.json())
            assert all(extends(raw)), (role, extends(raw))
