"""The scripted server's model directories (qwen25, qwen3) as transformers and tokenizers load them,
the server's own render against transformers' apply_chat_template, Qwen3's thinking (think
blocks, enable_thinking, vLLM's qwen3 reasoning parser), and reading a rendered prompt back."""

import json
import subprocess
import sys

import pytest
from tokenizers import Tokenizer
from transformers import AutoTokenizer

from rollout.scripted import chat_tokens as ct
from rollout.scripted.models import MODELS, model_dir
from rollout.scripted.prompt_parse import PromptError, parse_prompt
from tests.unit.test_chat_tokens import SYSTEM, TOOLS, call  # the same request shapes

CONVERSATION = [
    SYSTEM,
    {"role": "user", "content": "Cancel my trip, Café <b>"},
    {"role": "assistant", "content": None, "tool_calls": [call("call_2", "get_user_details", {"user_id": "zoë_42"})]},
    {"role": "tool", "tool_call_id": "call_2", "content": '{"name": "Zoë"}'},
    {
        "role": "assistant",
        "content": "Checking.",
        "tool_calls": [call("c3", "get_user_details", {"user_id": "a"}), call("c4", "transfer_to_human_agents", {})],
    },
    {"role": "tool", "tool_call_id": "c3", "content": "A"},
    {"role": "tool", "tool_call_id": "c4", "content": "B"},
    {"role": "assistant", "content": "Done."},
    {"role": "user", "content": "Thanks."},
]
KWARGS = [{}, {"enable_thinking": False}]


@pytest.fixture(scope="module", params=MODELS)
def hf(request):
    return request.param, AutoTokenizer.from_pretrained(str(model_dir(request.param)))


def test_model_dirs_load_in_transformers_and_tokenizers(hf):
    name, tok = hf
    raw = Tokenizer.from_file(str(model_dir(name) / "tokenizer.json"))
    assert len(tok) == raw.get_vocab_size() == json.loads((model_dir(name) / "config.json").read_text())["vocab_size"]
    assert tok.eos_token == "<|im_end|>" and tok.eos_token_id == ct.eos_id(name) and tok.pad_token == "<|endoftext|>"
    generation = json.loads((model_dir(name) / "generation_config.json").read_text())
    assert generation["eos_token_id"] == [ct.eos_id(name), tok.pad_token_id]
    assert json.loads((model_dir(name) / "config.json").read_text())["model_type"] == {"qwen25": "qwen2", "qwen3": "qwen3"}[name]
    added = {t.content: (i, t.special) for i, t in raw.get_added_tokens_decoder().items()}
    qwen3_extra = ["<tool_response>", "</tool_response>", "<think>", "</think>"]
    if name == "qwen3":  # Qwen3's order and flags: added after Qwen2.5's 22, not special
        assert [added[t] for t in qwen3_extra] == [(4118 + i, False) for i in range(4)]
        assert tok.decode(tok.encode("<think>\nx\n</think>"), skip_special_tokens=True) == "<think>\nx\n</think>"
    else:
        assert not set(qwen3_extra) & set(added)


@pytest.mark.parametrize("kwargs", KWARGS)
@pytest.mark.parametrize("upto", [2, 4, 8, 9])
def test_server_render_equals_transformers_apply_chat_template(hf, kwargs, upto):
    name, tok = hf
    messages = CONVERSATION[:upto]
    for tools in (TOOLS, None):
        ours = ct.render(messages, tools, model=name, chat_template_kwargs=kwargs)
        theirs = tok.apply_chat_template(
            ct.conversation(messages), tools=ct.tool_dicts(tools), tokenize=False, add_generation_prompt=True, **kwargs
        )
        assert ours == theirs
        assert ct.encode(ours, name) == tok(ours, add_special_tokens=False)["input_ids"]


def test_qwen3_generation_prompt_and_what_the_model_writes():
    messages = CONVERSATION[:2]
    assert ct.render(messages, model="qwen3").endswith("<|im_start|>assistant\n")
    off = ct.render(messages, model="qwen3", chat_template_kwargs={"enable_thinking": False})
    assert off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    reply = CONVERSATION[2]
    assert ct.generated_text(reply, think=True) == (
        "<think>\nThe next step is to call get_user_details.\n</think>\n\n" + ct.generated_text(reply)
    )
    # what the model writes is what Qwen3's template renders for that last turn
    full = ct.render(messages + [{**reply, "reasoning": ct.thought(reply)}], model="qwen3", add_generation_prompt=False)
    assert full == ct.render(messages, model="qwen3") + ct.generated_text(reply, think=True) + "<|im_end|>\n"


def test_qwen3_reasoning_parser_splits_the_think_block():
    text = ct.generated_text(CONVERSATION[4], think=True)
    parsed = ct.parse_completion(text, reasoning_parser="qwen3")
    assert parsed["reasoning"] == "\nThe next step is to call get_user_details, transfer_to_human_agents.\n"
    assert parsed["content"] == "\n\nChecking.\n" and len(parsed["tool_calls"]) == 2
    plain = ct.parse_completion(text)  # no reasoning parser: the think block stays in the content
    assert plain["reasoning"] is None and plain["content"].startswith("<think>\n")
    assert ct.parse_completion("<think>\nstill thinking", reasoning_parser="qwen3")["content"] is None
    assert ct.parse_completion("Hi.", reasoning_parser="qwen3", think=False) == {**ct.parse_completion("Hi."), "reasoning": None}
    with pytest.raises(ValueError, match="valid: qwen3"):
        ct.parse_completion("x", reasoning_parser="deepseek_r1")


def _play(model, reasoning_parser, kwargs):
    """A client playing two turns through the chat path; [(prompt ids, completion ids), ...]."""
    messages, out = list(CONVERSATION[:2]), []
    think = ct.thinking(model, kwargs)
    for reply, after in ((CONVERSATION[2], CONVERSATION[3]), (CONVERSATION[7], CONVERSATION[8]), (CONVERSATION[7], None)):
        _, prompt = ct.render_prompt(messages, TOOLS, model=model, chat_template_kwargs=kwargs)
        _, ids = ct.completion(reply, model=model, think=think)
        parsed = ct.parse_completion(
            ct.decode(ids, model=model),
            call_ids=[tc["id"] for tc in reply.get("tool_calls") or []],
            reasoning_parser=reasoning_parser,
            think=think,
        )
        sent = {"role": "assistant", "content": parsed["content"]}  # tau2 keeps no reasoning
        if parsed["tool_calls"]:
            sent["tool_calls"] = [{k: tc[k] for k in ("id", "type", "function")} for tc in parsed["tool_calls"]]
        messages += [sent] + ([after] if after else [])
        out.append((prompt, ids))
    return [later[: len(p) + len(c)] == p + c for (p, c), (later, _) in zip(out, out[1:])]


def test_qwen3_chat_path_splits_as_measured():
    """The chat path's next prompt is not prompt + completion: the reasoning parser drops the
    think block, enable_thinking=false's empty think block is not re-rendered, and without a
    parser the template drops think blocks before the last user query."""
    assert _play("qwen25", None, {}) == [True, True]
    assert _play("qwen3", "qwen3", {}) == [False, False]
    assert _play("qwen3", None, {"enable_thinking": False}) == [False, False]
    assert _play("qwen3", None, {}) == [True, False]  # a tool result keeps it; a new user message drops it


@pytest.mark.parametrize("kwargs", KWARGS)
@pytest.mark.parametrize("upto", [2, 3, 4, 8, 9])
def test_parse_prompt_reads_the_render_back(kwargs, upto):
    for name in MODELS:
        for tools in (TOOLS, None):
            text = ct.render(CONVERSATION[:upto], tools, model=name, chat_template_kwargs=kwargs)
            back = parse_prompt(ct.decode(ct.encode(text, name), skip_special_tokens=False, model=name))
            assert (
                ct.render(back["messages"], back["tools"], model=name, chat_template_kwargs=back["chat_template_kwargs"]) == text
            )
            assert back["chat_template_kwargs"] == (kwargs if name == "qwen3" else {})
            want = [(m["role"], m.get("content") or "", _calls(m)) for m in CONVERSATION[:upto]]
            if tools is None and name == "qwen25":  # no tools: Qwen2.5 renders the given system prompt (none given: its default)
                assert back["messages"][0] == SYSTEM
            assert [(m["role"], m.get("content") or "", _calls(m)) for m in back["messages"]] == want
            assert back["tools"] == ct.tool_dicts(tools)


def _calls(message):
    return [(tc["function"]["name"], json.loads(tc["function"]["arguments"])) for tc in message.get("tool_calls") or []]


def test_parse_prompt_gives_tool_results_the_calls_ids_and_the_default_system_prompt():
    text = ct.render(CONVERSATION[1:7], TOOLS, model="qwen25")
    back = parse_prompt(text)
    assert back["messages"][0] == {
        "role": "system",
        "content": "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
    }
    calls = back["messages"][4]["tool_calls"]
    assert [m["tool_call_id"] for m in back["messages"][5:7]] == [tc["id"] for tc in calls] == ["call_4_0", "call_4_1"]
    assert "system" not in [m["role"] for m in parse_prompt(ct.render(CONVERSATION[1:3], TOOLS, model="qwen3"))["messages"]]


def test_parse_prompt_rejects_what_is_not_a_render():
    with pytest.raises(PromptError, match="ChatML"):
        parse_prompt("hello")
    with pytest.raises(PromptError, match="generation prompt"):
        parse_prompt("<|im_start|>user\nhi<|im_end|>\n")


@pytest.mark.slow
def test_model_dirs_are_what_the_builder_builds():
    done = subprocess.run(
        [sys.executable, "-m", "rollout.scripted.tokenizer.model_dirs", "--check"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
