"""vLLM's chat token protocol for a Qwen2.5- or Qwen3-style model, over a real tokenizer and template.

The scripted server's token mode (server.py) answers like `vllm serve Qwen/Qwen2.5-*-Instruct
--enable-auto-tool-choice --tool-call-parser hermes` (model "qwen25") or `vllm serve Qwen/Qwen3-*
... --tool-call-parser hermes [--reasoning-parser qwen3]` (model "qwen3"): the player's assistant
message becomes the text the model would have generated, that text becomes token ids, and the
message returned is what vLLM's parsers make of the text. Nothing here knows about HTTP.

Data: the model directories of rollout/scripted/models (chat_template.py).

What vLLM does, and so what this module does. Checked in the vLLM 0.19.1 wheel; the same code is in
0.12.0 (paths as in 0.19.1, 0.12.0's in brackets) and in transformers 4.57.1:

1.-3. The prompt: chat_template.py (messages, tools, rendering, tokenization).
4. Generation (`completion`): a Qwen2.5 model writes an assistant turn as the template renders it
   after the generation prompt "<|im_start|>assistant\\n": content, then for each call
   "\\n<tool_call>\\n{\\"name\\": ..., \\"arguments\\": <tojson>}\\n</tool_call>", then "<|im_end|>", its
   EOS. A Qwen3 model writes what its template renders for the last assistant turn: with thinking
   on, "<think>\\n" + reasoning + "\\n</think>\\n\\n", then the same body (Qwen3's template joins
   content and calls with the same "\\n"); with `enable_thinking: false` the generation prompt
   already ends in "<think>\\n\\n</think>\\n\\n" and the model writes the body only. The reasoning is
   the message's own `reasoning` string when it has one, else `thought(message)`. The EOS id is the last of the choice's `token_ids` and has its own `logprobs.content`
   entry, but is not in the text: vllm/v1/core/sched/utils.py `check_stop` ends the request after
   appending the sampled EOS; vllm/v1/engine/detokenizer.py `update` skips the stop token when
   detokenizing and appends it to `token_ids`; usage counts it. An EOS that is also the
   max_tokens-th token is a "stop" (check_stop tests EOS first); only a longer completion is cut
   (finish_reason "length", no EOS).
5. Parsing (`parse_completion`): vllm/tool_parsers/hermes_tool_parser.py
   [entrypoints/openai/tool_parsers/hermes_tool_parser.py] `extract_tool_calls`: no "<tool_call>"
   -> content is the text; else each `<tool_call>(.*?)</tool_call>|<tool_call>(.*)` is json.loads'ed,
   arguments become json.dumps(arguments, ensure_ascii=False), content is the text before the first
   "<tool_call>" or None when that is empty, and any exception gives content = the whole text and
   no calls. vllm/entrypoints/openai/engine/serving.py `_parse_tool_calls_from_content` then makes
   whitespace-only content None. The parser runs when the request has tools and tool_choice is
   "auto" (the default with tools); without tools (tool_choice defaults to "none") the text is the
   content. "required" and a named tool_choice use guided JSON instead: the model writes
   `[{"name": ..., "parameters": {...}}]` (resp. the arguments object), content is "" and
   finish_reason is "tool_calls" (resp. "stop"): entrypoints/openai/chat_completion/serving.py
   `chat_completion_full_generator`. With `--reasoning-parser qwen3` the reasoning is split off
   first (vllm 0.34 parser/qwen3.py, `qwen3_config` + engine/parser_engine.py
   `extract_reasoning`): with thinking on, the text starts in the reasoning state, `<think>` is
   dropped, everything before the first `</think>` is the reasoning (no `</think>`: all of it)
   and what follows is the content (None when empty), which the tool parser then parses; with
   `enable_thinking: false` (the request's chat_template_kwargs) the whole text is content. The
   reasoning goes in the message's `reasoning` field (vLLM 0.34's ChatMessage; `reasoning_content`
   was its older name). Without a reasoning parser the think block stays in the content. Call ids are vLLM's random "chatcmpl-tool-<16 hex>"
   (chat_utils.py `make_tool_call_id`); here the caller's ids, else a hash of the text.
6. Logprobs (`logprobs_content`, logprobs.py `chat_content`): serving.py `_create_chat_logprobs` / `_get_top_logprobs`: one
   entry per completion token id (EOS included) with `token` (the id decoded alone, special tokens
   kept; vllm/v1/engine/logprobs.py `_verify_tokens` replaces a token ending in U+FFFD by the
   previous token + it, or ""), `logprob`, `bytes` (utf-8 of the decoded token) and `top_logprobs`
   (the sampled token first, then ranks 1..k, deduplicated, cut at k; `bytes` of each from its
   `token` string). `return_tokens_as_token_ids` makes every `token` "token_id:<id>" (the sampled
   entry's `bytes` stay those of the decoded text). Logprobs are returned only when `logprobs` is
   true and `top_logprobs` is not null. Values here are pseudo-random but fixed by (prompt ids,
   position, token): finite and <= 0.
7. Response (`vllm_response`): entrypoints/openai/chat_completion/protocol.py
   ChatCompletionResponse{id, object, created, model, choices, service_tier, system_fingerprint,
   usage, prompt_logprobs, prompt_token_ids, kv_transfer_params} with ChatCompletionResponseChoice
   {index, message, logprobs, finish_reason, stop_reason, token_ids} and ChatMessage{role, content,
   refusal, annotations, audio, function_call, tool_calls, reasoning}, dumped with every field
   (api_router.py `JSONResponse(content=result.model_dump())`); `prompt_token_ids` and `token_ids`
   are null unless `return_token_ids`. vLLM before 0.10.2 has neither field (`old_server=True`).

Drift: a real model's turn can differ from what the template re-renders from the parsed message,
so the next prompt's ids do not extend prompt + completion ids. One case is built in, as with
vLLM + Qwen2.5: content followed by a tool call comes back as "text\\n" (the parser keeps the
newline before "<tool_call>") and re-renders as "text\\n\\n<tool_call>". `DRIFT_MODES` add others.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable
from typing import Any, Optional

from rollout.scripted.chat_template import (  # noqa: F401  (re-exported: the prompt side of the protocol)
    DEFAULT_MODEL,
    EOS,
    SPECIAL_TOKENS_MAP,
    TEMPLATE_FILE,
    TOKENIZER_FILE,
    content_text,
    conversation,
    decode,
    encode,
    eos_id,
    render,
    render_prompt,
    template,
    thinking,
    tokenizer,
    tool_dicts,
)
from rollout.scripted.logprobs import chat_content as logprobs_content  # noqa: F401  (re-exported)
from rollout.scripted.logprobs import token_logprob  # noqa: F401  (re-exported)

DRIFT_MODES = (
    "compact_json",  # tool calls written as {"name":"f","arguments":{"a":1}}; re-rendered with ", " and ": "
    "arguments_first",  # tool calls written as {"arguments": {...}, "name": "f"}; re-rendered name first
    "leading_newline",  # the turn starts with "\n"; text keeps it, re-rendered "\n\n" is one token; before a
    # tool call it is whitespace-only content (None) and is not re-rendered at all
    "noncanonical",  # same text, but its first mergeable token is sampled as its two halves (a real
    # model can sample a non-canonical split); the re-render tokenizes canonically
)
REASONING_PARSERS = ("qwen3",)
_TOOL_CALL_RE = re.compile(r"<tool_call>(.*?)</tool_call>|<tool_call>(.*)", re.DOTALL)  # the hermes parser's


@functools.cache
def _halves() -> dict[int, tuple[int, int]]:
    """token id -> the ids of the merge that made it (for the noncanonical drift; the learned
    vocabulary is the same in every model directory)."""
    model = json.loads(TOKENIZER_FILE.read_text())["model"]
    vocab = model["vocab"]
    out = {}
    for merge in model["merges"]:
        a, b = merge.split(" ", 1) if isinstance(merge, str) else merge
        out.setdefault(vocab[a + b], (vocab[a], vocab[b]))
    return out


# -- the completion ---------------------------------------------------------------------------------


def _tojson(x) -> str:
    return json.dumps(x, ensure_ascii=False)


def _call_json(name: str, arguments, drift: Optional[str], required: bool = False) -> str:
    """One tool call as the model writes it; `arguments` a parsed value, or the raw string when it
    is not JSON (then it is written verbatim: such a call cannot be parsed back)."""
    raw = isinstance(arguments, _Raw)
    key = "parameters" if required else "arguments"
    if drift in ("compact_json", "arguments_first") and not raw:
        obj = {"name": name, key: arguments} if drift == "compact_json" else {key: arguments, "name": name}
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":") if drift == "compact_json" else None)
    return (
        '{"name": '
        + (_tojson(name) if required else f'"{name}"')
        + f', "{key}": '
        + (str(arguments) if raw else _tojson(arguments))
        + "}"
    )


class _Raw(str):
    """Tool-call arguments that are not JSON."""


def _arguments(fn: dict):
    args = fn.get("arguments")
    if isinstance(args, (dict, list)):
        return args
    if not args:
        return {}
    try:
        return json.loads(args)
    except ValueError:
        return _Raw(args)


def thought(message: dict) -> str:
    """The scripted model's reasoning before `message`: one short sentence fixed by the reply."""
    names = [(tc.get("function") or {}).get("name", "") for tc in message.get("tool_calls") or []]
    return f"The next step is to call {', '.join(names)}." if names else "The next step is to answer the user."


def generated_text(message: dict, *, tool_choice: Any = "auto", drift: Optional[str] = None, think: bool = False) -> str:
    """The text the model writes for `message` (module doc, 4), before its EOS; `think`: a
    Qwen3 model with thinking on (`chat_template.thinking`) writes its think block first."""
    if think:
        reasoning = message.get("reasoning") if isinstance(message.get("reasoning"), str) else thought(message)
        return (
            "<think>\n" + reasoning.strip("\n") + "\n</think>\n\n" + generated_text(message, tool_choice=tool_choice, drift=drift)
        )
    if drift is not None and drift not in DRIFT_MODES:
        raise ValueError(f"unknown drift mode '{drift}'; valid: {', '.join(DRIFT_MODES)}")
    calls = [tc.get("function") or {} for tc in message.get("tool_calls") or []]
    if calls and isinstance(tool_choice, dict):  # named: guided JSON of the arguments alone
        args = _arguments(calls[0])
        return str(args) if isinstance(args, _Raw) else _tojson(args)
    if calls and tool_choice == "required":  # guided JSON: a list of {"name", "parameters"}
        return "[" + ", ".join(_call_json(fn.get("name", ""), _arguments(fn), drift, required=True) for fn in calls) + "]"
    content = content_text(message.get("content"))
    parts = ([content] if content else []) + [
        f"<tool_call>\n{_call_json(fn.get('name', ''), _arguments(fn), drift)}\n</tool_call>" for fn in calls
    ]
    text = "\n".join(parts) if calls else content
    return "\n" + text if drift == "leading_newline" else text


def completion(
    message: dict, *, tool_choice: Any = "auto", drift: Optional[str] = None, model: str = DEFAULT_MODEL, think: bool = False
) -> tuple[str, list[int]]:
    """(generated text, completion token ids ending with the EOS id) for an assistant message."""
    text = generated_text(message, tool_choice=tool_choice, drift=drift, think=think)
    ids = encode(text, model)
    if drift == "noncanonical":
        halves = _halves()
        i = next((i for i, t in enumerate(ids) if t in halves), None)
        if i is not None:
            ids[i : i + 1] = halves[ids[i]]
    return text, ids + [eos_id(model)]


# -- parsing ---------------------------------------------------------------------------------------


def split_reasoning(text: str, think: bool = True) -> tuple[Optional[str], Optional[str]]:
    """(reasoning, content) as vLLM's qwen3 reasoning parser splits generated `text` (module
    doc, 5); `think` False: the request turned thinking off."""
    if not think:
        return None, text
    head, end, tail = text.partition("</think>")
    reasoning = head.replace("<think>", "", 1)
    return reasoning or None, (tail or None) if end else None


def parse_completion(
    text: str,
    *,
    tools: bool = True,
    tool_choice: Any = "auto",
    call_ids: Optional[list[str]] = None,
    reasoning_parser: Optional[str] = None,
    think: bool = True,
) -> dict:
    """The message vLLM returns for generated `text` (module doc, 5), in ChatMessage's shape.
    `tools`: whether the request offered tools; `call_ids`: ids for the calls, by position;
    `reasoning_parser`: None or "qwen3", `think` whether the request left thinking on."""
    calls: list[tuple[str, str]] = []
    reasoning = None
    if reasoning_parser == "qwen3":
        reasoning, text = split_reasoning(text, think)
    elif reasoning_parser is not None:
        raise ValueError(f"unknown reasoning parser '{reasoning_parser}'; valid: {', '.join(REASONING_PARSERS)}")
    if text is None:
        return _message(None, [], None, reasoning)
    content: Optional[str] = text
    if tools and isinstance(tool_choice, dict):
        calls, content = [((tool_choice.get("function") or {}).get("name", ""), text)], ""
    elif tools and tool_choice == "required":
        try:
            items = json.loads(text or "")
            if not isinstance(items, list) or not all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in items):
                raise ValueError
            calls = [(i["name"], json.dumps(i.get("parameters"), ensure_ascii=False)) for i in items]
        except ValueError:
            calls = []
        content = ""
    elif tools and tool_choice in ("auto", None) and "<tool_call>" in text:
        try:
            found = [json.loads(a if a else b) for a, b in _TOOL_CALL_RE.findall(text)]
            if not all(isinstance(f, dict) and isinstance(f["name"], str) for f in found):
                raise ValueError
            calls = [(f["name"], json.dumps(f["arguments"], ensure_ascii=False)) for f in found]
            content = text[: text.find("<tool_call>")] or None
            if content is not None and content.strip() == "":
                content = None
        except (ValueError, KeyError, TypeError):
            calls, content = [], text
    return _message(
        content,
        calls,
        [call_ids[i] if call_ids and i < len(call_ids) else _call_id(text, i) for i in range(len(calls))],
        reasoning,
    )


def _message(content: Optional[str], calls: list[tuple[str, str]], ids: Optional[list[str]], reasoning: Optional[str]) -> dict:
    return {
        "role": "assistant",
        "content": content,
        "refusal": None,
        "annotations": None,
        "audio": None,
        "function_call": None,
        "tool_calls": [
            {"id": i, "type": "function", "function": {"name": name, "arguments": args}}
            for i, (name, args) in zip(ids or [], calls)
        ],
        "reasoning": reasoning,
    }


def _call_id(text: str, i: int) -> str:
    return "chatcmpl-tool-" + hashlib.sha256(f"{i}:{text}".encode()).hexdigest()[:16]


# -- the response ----------------------------------------------------------------------------------


def wants_tokens(body: dict) -> bool:
    """Whether a request asks for vLLM's token fields (return_token_ids and/or logprobs)."""
    return bool(body.get("return_token_ids") or body.get("logprobs"))


def vllm_response(
    body: dict,
    message: dict,
    *,
    response_id: str,
    created: int,
    drift: Optional[str] = None,
    old_server: bool = False,
    model: str = DEFAULT_MODEL,
    reasoning_parser: Optional[str] = None,
    spend: Optional[Callable[[int], Optional[int]]] = None,
) -> tuple[int, dict]:
    """(HTTP status, JSON body) of vLLM's answer to chat request `body` when its model writes
    `message` (module doc, 7). `drift` (one of DRIFT_MODES) changes how the model writes it;
    `old_server` answers as a vLLM older than 0.10.2, which ignores return_token_ids; `model`
    names the model directory, `reasoning_parser` vLLM's --reasoning-parser (None or "qwen3").
    `spend(n)` generates the n completion tokens in time and says how many there were when a
    weight swap aborted them (None: all): the answer is then those, finish reason "abort"."""
    tools = body.get("tools")
    tool_choice = body.get("tool_choice", "auto" if tools else "none")
    kwargs = body.get("chat_template_kwargs") or {}
    from jinja2 import TemplateError

    try:
        _, prompt_ids = render_prompt(body.get("messages") or [], tools, model=model, chat_template_kwargs=kwargs)
    except (ValueError, TypeError, LookupError, TemplateError) as e:  # vLLM: 400 (e.g. arguments not JSON)
        return 400, {"error": {"message": str(e), "type": "BadRequestError", "param": None, "code": 400}}
    think = thinking(model, kwargs)
    calls_wanted = bool(tools) and tool_choice != "none" and bool(message.get("tool_calls"))
    guided = calls_wanted and (tool_choice == "required" or isinstance(tool_choice, dict))  # guided JSON: no think block
    text, ids = completion(
        message, tool_choice=tool_choice if calls_wanted else "auto", drift=drift, model=model, think=think and not guided
    )
    cap = body.get("max_completion_tokens") if body.get("max_completion_tokens") is not None else body.get("max_tokens")
    truncated = cap is not None and len(ids) > cap
    if truncated:
        ids = ids[:cap]
    aborted = spend(len(ids)) if spend is not None else None
    if aborted is not None:
        ids, truncated = ids[:aborted], True  # no EOS: the text is every id
    text = decode(ids[:-1] if not truncated else ids, model=model)
    parse_choice = tool_choice if calls_wanted or tool_choice in ("auto", None) else "none"
    reply = parse_completion(
        text,
        tools=bool(tools) and tool_choice != "none",
        tool_choice=parse_choice,
        call_ids=[tc.get("id") for tc in message.get("tool_calls") or []],
        reasoning_parser=reasoning_parser,
        think=think,
    )
    if aborted is not None:
        finish = "abort"
    elif isinstance(tool_choice, dict):
        finish = "length" if truncated else "stop"
    elif reply["tool_calls"] and parse_choice in ("auto", None) or (parse_choice == "required" and not truncated):
        finish = "tool_calls"
    else:
        finish = "length" if truncated else "stop"
    logprobs = None
    if body.get("logprobs") and body.get("top_logprobs", 0) is not None:
        logprobs = {
            "content": logprobs_content(
                prompt_ids,
                ids,
                top_logprobs=body.get("top_logprobs") or 0,
                as_token_ids=bool(body.get("return_tokens_as_token_ids")),
                model=model,
            )
        }
    want_ids = bool(body.get("return_token_ids"))
    choice = {
        "index": 0,
        "message": reply,
        "logprobs": logprobs,
        "finish_reason": finish,
        "stop_reason": None,
        "token_ids": ids if want_ids else None,
    }
    payload = {
        "id": response_id,
        "object": "chat.completion",
        "created": created,
        "model": body.get("model", "scripted"),
        "choices": [choice],
        "service_tier": None,
        "system_fingerprint": None,
        "usage": {
            "prompt_tokens": len(prompt_ids),
            "total_tokens": len(prompt_ids) + len(ids),
            "completion_tokens": len(ids),
            "prompt_tokens_details": None,
        },
        "prompt_logprobs": None,
        "prompt_token_ids": prompt_ids if want_ids else None,
        "kv_transfer_params": None,
    }
    if old_server:
        del choice["token_ids"], payload["prompt_token_ids"]
    return 200, payload
