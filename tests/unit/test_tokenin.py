"""Token-in's pieces without a server: parsing completions as vLLM's chat endpoint parses them,
the engines' token answers read and checked, and the client-side chat format against the
scripted server's own (independent) render of the same request."""

import json

import pytest

from rollout.core.tokenin.engines import read_answer, request_body, route
from rollout.core.tokenin.parsers import hermes_calls, parse_reply, split_reasoning
from rollout.core.tokens import CaptureError

pytestmark = pytest.mark.unit

CALL = '<tool_call>\n{"name": "get_user", "arguments": {"id": "u1"}}\n</tool_call>'


# ---- parsers: vLLM's Qwen3ReasoningParser.extract_reasoning and Hermes2ProToolParser ----------
@pytest.mark.parametrize(
    "text, thinking, expected",
    [
        ("<think>\nplan\n</think>\n\nHello", True, ("\nplan\n", "\n\nHello")),
        ("plan</think>", True, ("plan", None)),  # nothing after </think>: content None
        ("no tags at all", True, ("no tags at all", None)),  # thinking on, no </think>: cut inside the think block
        ("no tags at all", False, (None, "no tags at all")),  # thinking off: all content
        ("before<think>x</think>y", True, ("x", "y")),  # text before <think> is dropped
        ("plan <tool_call>\n<function=f>", True, ("plan ", "<tool_call>\n<function=f>")),  # implicit end (XML calls)
        ("mentions <tool_call> in passing", True, ("mentions <tool_call> in passing", None)),
    ],
)
def test_qwen3_reasoning_split(text, thinking, expected):
    assert split_reasoning(text, "qwen3", thinking_enabled=thinking) == expected


def test_no_reasoning_parser_keeps_the_think_block_in_the_content():
    assert split_reasoning("<think>x</think>\n\nhi", None) == (None, "<think>x</think>\n\nhi")


def test_hermes_calls():
    assert hermes_calls("just text") == ("just text", [])
    assert hermes_calls("Let me look.\n" + CALL) == ("Let me look.\n", [("get_user", '{"id": "u1"}')])
    assert hermes_calls(CALL) == (None, [("get_user", '{"id": "u1"}')])
    two = CALL + "\n" + CALL.replace("u1", "u2")
    assert [a for _, a in hermes_calls(two)[1]] == ['{"id": "u1"}', '{"id": "u2"}']
    assert hermes_calls('<tool_call>\n{"name":"f","arguments":{"a":1,"b":"é"}}')[1] == [("f", '{"a": 1, "b": "é"}')]  # unclosed
    broken = '<tool_call>\n{"name": "f", "arguments": {"a": }\n</tool_call>'
    assert hermes_calls(broken) == (broken, [])  # any failure: the whole text, no calls
    no_name = '<tool_call>{"arguments": {}}</tool_call>'
    assert hermes_calls(no_name) == (no_name, [])


def test_parse_reply_as_the_chat_endpoint():
    reply = parse_reply("<think>\nok\n</think>\n\n" + CALL, tool_call_parser="hermes", reasoning_parser="qwen3", first_call_id=7)
    assert reply.content is None  # "\n\n" before the call: whitespace-only content is None
    assert reply.reasoning == "\nok\n"
    assert [(c.id, c.name, c.arguments) for c in reply.tool_calls] == [
        ("chatcmpl-tool-0000000000000007", "get_user", '{"id": "u1"}')
    ]
    text_only = parse_reply("<think>\nok\n</think>\n\nDone.", tool_call_parser="hermes", reasoning_parser="qwen3")
    assert (text_only.content, text_only.tool_calls) == ("\n\nDone.", [])
    raw = parse_reply("<think>\nok\n</think>\n\n" + CALL, tool_call_parser="hermes", reasoning_parser=None)
    assert raw.content == "<think>\nok\n</think>\n\n" and len(raw.tool_calls) == 1  # no parser: the think block is content
    assert parse_reply(CALL, tool_call_parser=None, reasoning_parser=None).content == CALL  # no tools offered
    with pytest.raises(ValueError, match="valid: hermes"):
        parse_reply("x", tool_call_parser="mistral", reasoning_parser=None)


# ---- engines --------------------------------------------------------------------------------------
def test_routes_and_request_bodies():
    assert route("vllm", "http://h:8000/v1") == ("http://h:8000/v1", "/completions")
    assert route("sglang", "http://h:30000/v1/") == ("http://h:30000", "/generate")
    fields = {"temperature": 1.0, "max_tokens": 64, "seed": 3, "tool_choice": "required", "top_k": 20, "cache_salt": "s"}
    vllm = request_body("vllm", "m", [1, 2], fields)
    assert vllm == {"model": "m", "prompt": [1, 2], "temperature": 1.0, "max_tokens": 64, "seed": 3, "top_k": 20,
                    "cache_salt": "s", "logprobs": 0, "return_token_ids": True}  # fmt: skip
    sglang = request_body("sglang", "m", [1, 2], fields)
    assert sglang["input_ids"] == [1, 2] and sglang["return_logprob"] is True and sglang["cache_salt"] == "s"
    assert sglang["sampling_params"] == {"temperature": 1.0, "max_new_tokens": 64, "sampling_seed": 3, "top_k": 20}


def vllm_answer(ids, logprobs, prompt=(1, 2), finish="stop"):
    choice = {"index": 0, "text": "x", "finish_reason": finish, "token_ids": ids, "prompt_token_ids": list(prompt),
              "logprobs": {"tokens": ["t"] * len(logprobs), "token_logprobs": logprobs, "top_logprobs": None, "text_offset": []}}  # fmt: skip
    return {"id": "cmpl-1", "object": "text_completion", "choices": [choice], "usage": {"prompt_tokens": len(prompt)}}


def test_vllm_answers_are_read_and_checked():
    answer = read_answer("vllm", vllm_answer([5, 6, 9], [-0.1, -0.2, -0.3]), [1, 2], vocab_size=10)
    assert (answer.completion_ids, answer.logprobs, answer.finish_reason) == ([5, 6, 9], [-0.1, -0.2, -0.3], "stop")
    bad = {
        "misaligned": (vllm_answer([5, 6], [-0.1]), "misaligned: 2 completion ids but 1 logprobs"),
        "negative id": (vllm_answer([5, -1], [-0.1, -0.1]), "outside"),
        "huge id": (vllm_answer([5, 10**30], [-0.1, -0.1]), "outside"),
        "beyond vocab": (vllm_answer([5, 10], [-0.1, -0.1]), "outside \\[0, 10\\)"),
        "positive logprob": (vllm_answer([5], [5.0]), "above 0"),
        "placeholder": (vllm_answer([5], [-9999.0]), "placeholder"),
        "nan": (vllm_answer([5], [float("nan")]), "not a finite number"),
        "prompt not echoed": (vllm_answer([5], [-0.1], prompt=(1, 3)), "not the 2 ids sent"),
        "no ids": ({"choices": [{"text": "x", "logprobs": {"token_logprobs": []}}]}, "ignored `return_token_ids`"),
        "no logprobs": ({"choices": [{"text": "x", "token_ids": [5], "logprobs": None}]}, "ignored `logprobs`"),
        "not completions": ({"object": "chat.completion"}, "no choices"),
    }
    for name, (data, message) in bad.items():
        with pytest.raises(CaptureError, match=message):
            read_answer("vllm", data, [1, 2], vocab_size=10)
        assert name


def test_sglang_answers_are_read_and_checked():
    data = {"text": "hi", "output_ids": [5, 9],
            "meta_info": {"id": "r", "finish_reason": {"type": "stop", "matched": 9}, "prompt_tokens": 2,
                          "output_token_logprobs": [[-0.5, 5, None], [-0.25, 9, None]], "weight_version": "3"}}  # fmt: skip
    answer = read_answer("sglang", data, [1, 2], vocab_size=10)
    assert (answer.completion_ids, answer.logprobs, answer.finish_reason, answer.weight_version) == (
        [5, 9],
        [-0.5, -0.25],
        "stop",
        "3",
    )
    data["output_ids"] = [5, 8]
    with pytest.raises(CaptureError, match="different tokens"):
        read_answer("sglang", data, [1, 2], vocab_size=10)
    with pytest.raises(CaptureError, match="ignored `return_logprob`"):
        read_answer("sglang", {"text": "hi", "meta_info": {"finish_reason": {"type": "stop"}}}, [1], vocab_size=10)


# ---- the chat format against the scripted server's render ----------------------------------------
@pytest.fixture(scope="module")
def qwen25_dir(tmp_path_factory):
    from transformers import PreTrainedTokenizerFast

    from rollout.scripted.chat_template import TEMPLATE_FILE, TOKENIZER_FILE

    path = tmp_path_factory.mktemp("qwen25")
    PreTrainedTokenizerFast(
        tokenizer_file=str(TOKENIZER_FILE),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=TEMPLATE_FILE.read_text(),
    ).save_pretrained(path)
    return str(path)


TOOLS = [{"type": "function", "function": {"name": "get_user", "description": "Get a user.",
          "parameters": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}}}]  # fmt: skip
OPENING = [{"role": "system", "content": "You are an agent. Follow the policy."},
           {"role": "assistant", "content": "Hi! How can I help you today?"}, {"role": "user", "content": "Cancel my trip."}]  # fmt: skip


def test_first_prompt_is_the_engines_render(qwen25_dir):
    from rollout.core.tokenin.chat_format import ChatFormat
    from rollout.scripted.chat_template import render_prompt

    fmt = ChatFormat.load(qwen25_dir)
    assert fmt.first_prompt(OPENING, TOOLS) == render_prompt(OPENING, TOOLS)[1]


def test_tail_extends_the_context_exactly_where_the_template_is_append_only(qwen25_dir):
    """Qwen2.5 with tool calls alone re-renders history as the model wrote it: there, prompt +
    completion + tail must equal the engine's render of the whole conversation."""
    from rollout.core.tokenin.chat_format import ChatFormat
    from rollout.scripted import chat_tokens

    fmt = ChatFormat.load(qwen25_dir)
    call = {"id": "c1", "type": "function", "function": {"name": "get_user", "arguments": json.dumps({"id": "u1"})}}
    assistant = {"role": "assistant", "content": None, "tool_calls": [call]}
    after = [
        {"role": "tool", "tool_call_id": "c1", "content": '{"name": "Ann"}'},
        {"role": "tool", "tool_call_id": "c2", "content": "ok"},
    ]
    _, completion = chat_tokens.completion(assistant)
    prompt = fmt.first_prompt(OPENING, TOOLS)
    assert prompt + completion + fmt.tail(assistant, after) == fmt.first_prompt([*OPENING, assistant, *after], TOOLS)
    user_turn = [{"role": "user", "content": "Thanks, and my other trip?"}]
    reply = {"role": "assistant", "content": "Done."}
    _, said = chat_tokens.completion(reply)
    assert prompt + said + fmt.tail(reply, user_turn) == fmt.first_prompt([*OPENING, reply, *user_turn], TOOLS)


def test_missing_or_bad_tokenizer_is_named(tmp_path):
    from rollout.core.failures import InvalidInput
    from rollout.core.tokenin.chat_format import ChatFormat

    with pytest.raises(InvalidInput, match="needs llm.tokenizer"):
        ChatFormat.load("")
    with pytest.raises(InvalidInput, match="is not a directory"):
        ChatFormat.load(str(tmp_path / "nope"))
    with pytest.raises(InvalidInput, match="cannot load a tokenizer"):
        ChatFormat.load(str(tmp_path))
