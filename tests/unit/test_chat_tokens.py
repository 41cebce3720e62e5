"""chat_tokens: the tau2 tokenizer, Qwen2.5's template rendered as vLLM renders it, generated text
and its parse as vLLM's hermes parser makes it, logprobs, the response shape, and drift."""

import json
import math

import pytest

from rollout.scripted import chat_tokens as ct
from rollout.scripted.tokenizer import build

pytestmark = pytest.mark.unit

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_user_details",
            "description": "Get the details of a user.",
            "parameters": {"type": "object", "properties": {"user_id": {"type": "string"}}, "required": ["user_id"]},
            "strict": False,
        },
    },
    {"type": "function", "function": {"name": "transfer_to_human_agents", "parameters": {"type": "object", "properties": {}}}},
]
SYSTEM = {"role": "system", "content": "You are an airline agent. <policy> & rules </policy>"}


def call(call_id, name, args):
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}


def text(content):
    return {"role": "assistant", "content": content}


def calls(*tool_calls, content=None):
    return {"role": "assistant", "content": content, "tool_calls": list(tool_calls)}


def sent_back(reply: dict) -> dict:
    """The assistant message an OpenAI client puts in its next request for a returned message."""
    out = {"role": "assistant", "content": reply["content"]}
    if reply["tool_calls"]:
        out["tool_calls"] = [{"id": tc["id"], "type": "function", "function": dict(tc["function"])} for tc in reply["tool_calls"]]
    return out


# -- tokenizer -----------------------------------------------------------------------------------


def test_tokenizer_is_small_byte_level_with_qwen25_added_tokens():
    tok = ct.tokenizer()
    assert ct.TOKENIZER_FILE.stat().st_size < 1_000_000
    assert tok.get_vocab_size() == build.VOCAB_SIZE + len(build.QWEN25_ADDED_TOKENS)
    added = {t.content: t.special for t in tok.get_added_tokens_decoder().values()}
    assert added == dict(build.QWEN25_ADDED_TOKENS)
    assert added["<|im_end|>"] and not added["<tool_call>"]
    assert ct.eos_id() == tok.token_to_id("<|im_end|>") == build.VOCAB_SIZE + 2
    # Qwen2.5 has no <tool_response> token: it is ordinary text
    assert len(ct.encode("<tool_response>")) > 1
    for s in ["Your reservation 4WQ150 is cancelled.", "naïve café — 日本 ✈", "  \n\n\tx", '{"a": [1, 2.5e-3]}']:
        assert ct.decode(ct.encode(s)) == s


def test_special_tokens_are_never_split_and_decode_keeps_or_skips_them():
    ids = ct.encode("<|im_start|>user\nhi<|im_end|>\n<tool_call>")
    tok = ct.tokenizer()
    assert ids[0] == tok.token_to_id("<|im_start|>") and tok.token_to_id("<tool_call>") == ids[-1]
    assert ct.decode(ids, skip_special_tokens=False) == "<|im_start|>user\nhi<|im_end|>\n<tool_call>"
    assert ct.decode(ids) == "user\nhi\n<tool_call>"  # <tool_call> is added, not special (as in Qwen2.5)


@pytest.mark.parametrize(
    "text",
    [
        "<|im_start|>user\nhi<|im_end|>\n<tool_call>",
        "plain text, no added token",
        "",
        'a<|im_end|>b<|im_end|><|im_end|>  spaced <tool_call>\n{"x": 1}\n</tool_call>',
        " \n<|im_start|>assistant\n\u00e9\u00e8 \U0001f600 caf\u00e9<|endoftext|>",
        "<|im_start|><|im_end|>",
        "tail without end <|im_start|>",
    ],
)
def test_encode_by_cached_pieces_equals_encoding_the_text_whole(text):
    assert ct.encode(text) == ct.tokenizer().encode(text, add_special_tokens=False).ids
    assert ct.encode(text) == ct.tokenizer().encode(text, add_special_tokens=False).ids  # from the cache


def test_encode_of_whole_conversations_equals_the_tokenizers():
    messages = [SYSTEM, {"role": "user", "content": "I need to cancel reservation 4WQ150."}]
    for reply in CLEAN[:3]:
        messages.append(
            sent_back(
                ct.parse_completion(
                    ct.decode(ct.completion(reply)[1]), call_ids=[tc["id"] for tc in reply.get("tool_calls") or []]
                )
            )
        )
        text = ct.render(messages, TOOLS)
        assert ct.encode(text) == ct.tokenizer().encode(text, add_special_tokens=False).ids


# -- the prompt ----------------------------------------------------------------------------------


def test_render_matches_qwen25_template_as_vllm_renders_it():
    messages = [
        SYSTEM,
        {"role": "user", "content": "Cancel my trip, Café <b>"},
        calls(call("call_1", "get_user_details", {"user_id": "zoë_42"})),
        {"role": "tool", "tool_call_id": "call_1", "content": '{"name": "Zoë"}'},
        calls(call("c2", "get_user_details", {"user_id": "a"}), call("c3", "transfer_to_human_agents", {}), content="Checking."),
        {"role": "tool", "tool_call_id": "c2", "content": "A"},
        {"role": "tool", "tool_call_id": "c3", "content": "B"},
        text("Done."),
    ]
    tool_json = [
        '{"type": "function", "function": {"name": "get_user_details", "description": "Get the details of a user.", '
        '"parameters": {"type": "object", "properties": {"user_id": {"type": "string"}}, "required": ["user_id"]}, "strict": false}}',
        '{"type": "function", "function": {"name": "transfer_to_human_agents", "description": null, '
        '"parameters": {"type": "object", "properties": {}}}}',
    ]
    expected = (
        "<|im_start|>system\nYou are an airline agent. <policy> & rules </policy>\n\n# Tools\n\n"
        "You may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
        + "\n".join(tool_json)
        + "\n</tools>\n\n"
        "For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n"
        '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\nCancel my trip, Café <b><|im_end|>\n"
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_user_details", "arguments": {"user_id": "zoë_42"}}\n</tool_call><|im_end|>\n'
        '<|im_start|>user\n<tool_response>\n{"name": "Zoë"}\n</tool_response><|im_end|>\n'
        '<|im_start|>assistant\nChecking.\n<tool_call>\n{"name": "get_user_details", "arguments": {"user_id": "a"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "transfer_to_human_agents", "arguments": {}}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\n<tool_response>\nA\n</tool_response>\n<tool_response>\nB\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\nDone.<|im_end|>\n<|im_start|>assistant\n"
    )
    text_, ids = ct.render_prompt(messages, TOOLS)
    assert text_ == expected
    assert ids == ct.encode(expected)


def test_render_without_tools_or_system_uses_the_default_system_prompt():
    assert ct.render([{"role": "user", "content": "hi"}]) == (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    )
    assert ct.render([SYSTEM, {"role": "user", "content": "hi"}], tools=[]).startswith("<|im_start|>system\nYou are an airline")


def test_conversation_is_vllms_preprocessing():
    conv = ct.conversation(
        [
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "x", "type": "function", "name": "f", "function": {"name": "f", "arguments": ""}}],
            },
            {"role": "assistant", "content": "", "tool_calls": []},
            {"role": "tool", "tool_call_id": "x", "content": None},
        ]
    )
    assert conv[0] == {"role": "user", "content": "a\nb"}
    assert conv[1]["content"] == "" and conv[1]["tool_calls"][0]["function"] == {"name": "f", "arguments": {}}
    assert conv[2] == {"role": "assistant", "content": ""}
    assert conv[3] == {"role": "tool", "content": "", "tool_call_id": "x"}
    with pytest.raises(ValueError):
        ct.conversation([calls({"id": "x", "type": "function", "function": {"name": "f", "arguments": '{"broken": '}})])


# -- generation and parsing ----------------------------------------------------------------------

CLEAN = [
    text("Your flight is cancelled."),
    calls(call("call_7", "get_user_details", {"user_id": "mia_li_3668", "note": "naïve"})),
    calls(call("a", "get_user_details", {"user_id": "x"}), call("b", "transfer_to_human_agents", {})),
    text(""),
]


@pytest.mark.parametrize("message", CLEAN + [calls(call("c", "transfer_to_human_agents", {}), content="One moment.")])
def test_generated_text_is_the_templates_assistant_turn(message):
    rendered = ct.render([{"role": "user", "content": "q"}, message], TOOLS, add_generation_prompt=False)
    prompt = ct.render([{"role": "user", "content": "q"}], TOOLS)
    generated, ids = ct.completion(message)
    assert rendered == prompt + generated + "<|im_end|>\n"
    assert ids[-1] == ct.eos_id() and ids[:-1] == ct.encode(generated)
    assert ct.decode(ids) == generated


def test_parse_round_trip_is_the_hermes_parsers():
    reply = ct.parse_completion(ct.completion(CLEAN[0])[0])
    assert reply["content"] == "Your flight is cancelled." and reply["tool_calls"] == []
    reply = ct.parse_completion(ct.completion(CLEAN[1])[0], call_ids=["call_7"])
    assert reply["content"] is None
    assert reply["tool_calls"] == [
        {
            "id": "call_7",
            "type": "function",
            "function": {"name": "get_user_details", "arguments": '{"user_id": "mia_li_3668", "note": "naïve"}'},
        }
    ]  # ensure_ascii=False
    reply = ct.parse_completion(ct.completion(CLEAN[2])[0])
    assert [tc["function"]["name"] for tc in reply["tool_calls"]] == ["get_user_details", "transfer_to_human_agents"]
    assert all(tc["id"].startswith("chatcmpl-tool-") for tc in reply["tool_calls"])
    assert ct.parse_completion("")["content"] == ""
    # content before a call keeps its newline (the parser cuts at "<tool_call>")
    reply = ct.parse_completion(ct.completion(calls(call("c", "transfer_to_human_agents", {}), content="One moment."))[0])
    assert reply["content"] == "One moment.\n" and len(reply["tool_calls"]) == 1
    assert list(reply) == ["role", "content", "refusal", "annotations", "audio", "function_call", "tool_calls", "reasoning"]


def test_parse_failures_and_requests_without_tools_return_the_text():
    bad = ct.completion(calls({"id": "x", "type": "function", "function": {"name": "f", "arguments": '{"broken": '}}))[0]
    assert bad == '<tool_call>\n{"name": "f", "arguments": {"broken": }\n</tool_call>'
    assert ct.parse_completion(bad) == {**ct.parse_completion("x"), "content": bad}
    good = ct.completion(CLEAN[1])[0]
    assert ct.parse_completion(good, tools=False)["content"] == good
    assert ct.parse_completion('  \n<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>')["content"] is None


def test_required_and_named_tool_choice_write_guided_json():
    message = calls(call("a", "get_user_details", {"user_id": "x"}))
    written = ct.generated_text(message, tool_choice="required")
    assert written == '[{"name": "get_user_details", "parameters": {"user_id": "x"}}]'
    reply = ct.parse_completion(written, tool_choice="required", call_ids=["a"])
    assert reply["content"] == "" and reply["tool_calls"][0]["function"]["arguments"] == '{"user_id": "x"}'
    named = {"type": "function", "function": {"name": "get_user_details"}}
    written = ct.generated_text(message, tool_choice=named)
    assert written == '{"user_id": "x"}'
    assert ct.parse_completion(written, tool_choice=named)["tool_calls"][0]["function"] == {
        "name": "get_user_details",
        "arguments": '{"user_id": "x"}',
    }


# -- logprobs ------------------------------------------------------------------------------------


def test_logprobs_one_entry_per_id_deterministic_finite_nonpositive():
    _, prompt = ct.render_prompt([SYSTEM, {"role": "user", "content": "hi"}], TOOLS)
    _, ids = ct.completion(CLEAN[1])
    entries = ct.logprobs_content(prompt, ids, top_logprobs=3)
    assert len(entries) == len(ids)
    assert entries == ct.logprobs_content(prompt, ids, top_logprobs=3)
    assert [e["logprob"] for e in entries] != [e["logprob"] for e in ct.logprobs_content(prompt[:-1], ids, top_logprobs=3)]
    for e, tid in zip(entries, ids):
        assert math.isfinite(e["logprob"]) and e["logprob"] <= 0
        alone = ct.tokenizer().decode([tid], skip_special_tokens=False)
        assert e["token"] == alone or alone.endswith("\ufffd")  # "naïve": ï is two byte-level tokens
        assert e["bytes"] == list(e["token"].encode())
        assert len(e["top_logprobs"]) == 3 and e["top_logprobs"][0] == {k: e[k] for k in ("token", "logprob", "bytes")}
        assert sum(math.exp(t["logprob"]) for t in e["top_logprobs"]) <= 1.0 + 1e-9
    assert entries[-1]["token"] == "<|im_end|>"
    assert all(e["top_logprobs"] == [] for e in ct.logprobs_content(prompt, ids))


def test_logprobs_as_token_ids_and_partial_utf8():
    ids = ct.encode("日本") + [ct.eos_id()]
    entries = ct.logprobs_content([1, 2], ids, top_logprobs=1, as_token_ids=True)
    assert [e["token"] for e in entries] == [f"token_id:{i}" for i in ids]
    assert entries[0]["top_logprobs"][0]["bytes"] == list(f"token_id:{ids[0]}".encode())
    # vLLM: a token ending in a partial character shows as the previous token + it, else ""
    assert [e["token"] for e in ct.logprobs_content([1, 2], ids)] == ["", "", "", "", "", "", "<|im_end|>"]
    ids = ct.encode("café")
    assert [ct.tokenizer().decode([i]) for i in ids[-2:]] == ["\ufffd", "\ufffd"]
    entries = ct.logprobs_content([1, 2], ids)
    assert [e["token"] for e in entries[-2:]] == ["", "é"] and entries[-1]["bytes"] == list("é".encode())


# -- multi-turn extension and drift --------------------------------------------------------------


def turns(replies, drift=None):
    """Play `replies` as a client would; (prompt ids, completion ids) per turn."""
    messages, out = [SYSTEM, {"role": "user", "content": "I need to cancel reservation 4WQ150."}], []
    for i, message in enumerate(replies):
        _, prompt = ct.render_prompt(messages, TOOLS)
        generated, ids = ct.completion(message, drift=drift)
        reply = ct.parse_completion(ct.decode(ids), call_ids=[tc["id"] for tc in message.get("tool_calls") or []])
        out.append((prompt, ids))
        messages.append(sent_back(reply))
        for tc in reply["tool_calls"]:
            messages.append({"role": "tool", "tool_call_id": tc["id"], "content": json.dumps({"ok": True, "turn": i})})
        if not reply["tool_calls"]:
            messages.append({"role": "user", "content": f"Thanks, next question {i}."})
    _, prompt = ct.render_prompt(messages, TOOLS)
    out.append((prompt, []))
    return out


def extends(played) -> list[bool]:
    return [later[: len(prompt) + len(ids)] == prompt + ids for (prompt, ids), (later, _) in zip(played, played[1:])]


def test_clean_conversation_prompts_extend_prompt_plus_completion():
    assert all(extends(turns(CLEAN[:3] + [text("Anything else?")])))


@pytest.mark.parametrize(
    "drift,turn",
    [
        ("compact_json", 1),
        ("arguments_first", 1),
        ("leading_newline", 0),
        ("leading_newline", 1),
        ("noncanonical", 0),
        ("noncanonical", 1),
    ],
)
def test_drift_breaks_extension(drift, turn):
    played = turns(CLEAN[:3] + [text("Anything else?")], drift=drift)
    assert not extends(played)[turn]
    assert ct.decode(played[turn][1]) == ct.generated_text((CLEAN[:3])[turn], drift=drift)


def test_content_before_a_tool_call_drifts_as_with_vllm_and_qwen25():
    played = turns([calls(call("c", "transfer_to_human_agents", {}), content="One moment."), text("Bye.")])
    assert extends(played) == [False, True]


# -- the response --------------------------------------------------------------------------------

BODY = {"model": "m", "messages": [SYSTEM, {"role": "user", "content": "hi"}], "tools": TOOLS}


def test_vllm_response_shape_and_usage():
    status, r = ct.vllm_response(
        {**BODY, "return_token_ids": True, "logprobs": True, "top_logprobs": 2}, CLEAN[1], response_id="chatcmpl-1", created=7
    )
    assert status == 200
    assert list(r) == [
        "id",
        "object",
        "created",
        "model",
        "choices",
        "service_tier",
        "system_fingerprint",
        "usage",
        "prompt_logprobs",
        "prompt_token_ids",
        "kv_transfer_params",
    ]
    choice = r["choices"][0]
    assert list(choice) == ["index", "message", "logprobs", "finish_reason", "stop_reason", "token_ids"]
    assert choice["finish_reason"] == "tool_calls" and choice["stop_reason"] is None
    assert r["prompt_token_ids"] == ct.render_prompt(BODY["messages"], TOOLS)[1]
    assert choice["token_ids"] == ct.completion(CLEAN[1])[1]
    assert len(choice["logprobs"]["content"]) == len(choice["token_ids"])
    assert r["usage"] == {
        "prompt_tokens": len(r["prompt_token_ids"]),
        "total_tokens": len(r["prompt_token_ids"]) + len(choice["token_ids"]),
        "completion_tokens": len(choice["token_ids"]),
        "prompt_tokens_details": None,
    }
    assert choice["message"]["tool_calls"][0]["id"] == "call_7"
    _, r = ct.vllm_response({**BODY, "logprobs": True}, CLEAN[0], response_id="x", created=0)
    assert r["prompt_token_ids"] is None and r["choices"][0]["token_ids"] is None
    assert r["choices"][0]["finish_reason"] == "stop" and r["usage"]["completion_tokens"] == len(
        r["choices"][0]["logprobs"]["content"]
    )
    _, r = ct.vllm_response({**BODY, "logprobs": True, "top_logprobs": None}, CLEAN[0], response_id="x", created=0)
    assert r["choices"][0]["logprobs"] is None


def test_max_tokens_cuts_the_completion_without_eos():
    full = ct.completion(CLEAN[0])[1]
    _, r = ct.vllm_response({**BODY, "return_token_ids": True, "max_tokens": 3}, CLEAN[0], response_id="x", created=0)
    choice = r["choices"][0]
    assert choice["finish_reason"] == "length" and choice["token_ids"] == full[:3]
    assert choice["message"]["content"] == ct.decode(full[:3])
    _, r = ct.vllm_response(
        {**BODY, "return_token_ids": True, "max_completion_tokens": len(full), "max_tokens": 1},
        CLEAN[0],
        response_id="x",
        created=0,
    )
    assert r["choices"][0]["finish_reason"] == "stop" and r["choices"][0]["token_ids"] == full  # EOS at the cap: stop
    _, r = ct.vllm_response({**BODY, "return_token_ids": True, "max_tokens": 5}, CLEAN[1], response_id="x", created=0)
    assert r["choices"][0]["finish_reason"] == "length" and r["choices"][0]["message"]["tool_calls"] == []


def test_old_server_and_bad_history():
    _, r = ct.vllm_response(
        {**BODY, "return_token_ids": True, "logprobs": True}, CLEAN[0], response_id="x", created=0, old_server=True
    )
    assert "prompt_token_ids" not in r and "token_ids" not in r["choices"][0] and r["choices"][0]["logprobs"]["content"]
    bad = {
        **BODY,
        "return_token_ids": True,
        "messages": BODY["messages"] + [calls({"id": "x", "type": "function", "function": {"name": "f", "arguments": "{"}})],
    }
    status, r = ct.vllm_response(bad, CLEAN[0], response_id="x", created=0)
    assert status == 400 and r["error"]["code"] == 400
