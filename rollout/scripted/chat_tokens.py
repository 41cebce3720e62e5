"""vLLM's token protocol for a Qwen2.5-style model, over a real tokenizer and chat template.

The scripted server's token mode (server.py) answers like `vllm serve Qwen/Qwen2.5-*-Instruct
--enable-auto-tool-choice --tool-call-parser hermes`: the player's assistant message becomes the
text the model would have generated, that text becomes token ids, and the message returned is
what vLLM's parser makes of the text. Nothing here knows about HTTP.

Data (rollout/scripted/tokenizer/): `tau2-bpe.json`, a byte-level BPE tokenizer in Qwen2.5's shape
trained on tau2's texts (4096 tokens + Qwen2.5's 22 added tokens; build.py says how and why), and
`qwen25_chat_template.jinja`, Qwen2.5-Instruct's chat template verbatim.

What vLLM does, and so what this module does. Checked in the vLLM 0.19.1 wheel; the same code is in
0.12.0 (paths as in 0.19.1, 0.12.0's in brackets) and in transformers 4.57.1:

1.-3. The prompt: chat_template.py (messages, tools, rendering, tokenization).
4. Generation (`completion`): a Qwen2.5 model writes an assistant turn as the template renders it
   after the generation prompt "<|im_start|>assistant\\n": content, then for each call
   "\\n<tool_call>\\n{\\"name\\": ..., \\"arguments\\": <tojson>}\\n</tool_call>", then "<|im_end|>", its
   EOS. The EOS id is the last of the choice's `token_ids` and has its own `logprobs.content`
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
   `chat_completion_full_generator`. Call ids are vLLM's random "chatcmpl-tool-<16 hex>"
   (chat_utils.py `make_tool_call_id`); here the caller's ids, else a hash of the text.
6. Logprobs (`logprobs_content`): serving.py `_create_chat_logprobs` / `_get_top_logprobs`: one
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
import math
import re
import struct
from typing import Any, Optional

from rollout.scripted.chat_template import (  # noqa: F401  (re-exported: the prompt side of the protocol)
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
    tokenizer,
    tool_dicts,
)

DRIFT_MODES = (
    "compact_json",  # tool calls written as {"name":"f","arguments":{"a":1}}; re-rendered with ", " and ": "
    "arguments_first",  # tool calls written as {"arguments": {...}, "name": "f"}; re-rendered name first
    "leading_newline",  # the turn starts with "\n"; text keeps it, re-rendered "\n\n" is one token; before a
    # tool call it is whitespace-only content (None) and is not re-rendered at all
    "noncanonical",  # same text, but its first mergeable token is sampled as its two halves (a real
    # model can sample a non-canonical split); the re-render tokenizes canonically
)
_TOOL_CALL_RE = re.compile(r"<tool_call>(.*?)</tool_call>|<tool_call>(.*)", re.DOTALL)  # the hermes parser's


@functools.cache
def _halves() -> dict[int, tuple[int, int]]:
    """token id -> the ids of the merge that made it (for the noncanonical drift)."""
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


def generated_text(message: dict, *, tool_choice: Any = "auto", drift: Optional[str] = None) -> str:
    """The text a Qwen2.5 model writes for `message` (module doc, 4), before its EOS."""
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


def completion(message: dict, *, tool_choice: Any = "auto", drift: Optional[str] = None) -> tuple[str, list[int]]:
    """(generated text, completion token ids ending with the EOS id) for an assistant message."""
    text = generated_text(message, tool_choice=tool_choice, drift=drift)
    ids = encode(text)
    if drift == "noncanonical":
        halves = _halves()
        i = next((i for i, t in enumerate(ids) if t in halves), None)
        if i is not None:
            ids[i : i + 1] = halves[ids[i]]
    return text, ids + [eos_id()]


# -- parsing ---------------------------------------------------------------------------------------


def parse_completion(text: str, *, tools: bool = True, tool_choice: Any = "auto", call_ids: Optional[list[str]] = None) -> dict:
    """The message vLLM returns for generated `text` (module doc, 5), in ChatMessage's shape.
    `tools`: whether the request offered tools; `call_ids`: ids for the calls, by position."""
    calls: list[tuple[str, str]] = []
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
    tool_calls = [
        {
            "id": (call_ids[i] if call_ids and i < len(call_ids) else _call_id(text, i)),
            "type": "function",
            "function": {"name": name, "arguments": args},
        }
        for i, (name, args) in enumerate(calls)
    ]
    return {
        "role": "assistant",
        "content": content,
        "refusal": None,
        "annotations": None,
        "audio": None,
        "function_call": None,
        "tool_calls": tool_calls,
        "reasoning": None,
    }


def _call_id(text: str, i: int) -> str:
    return "chatcmpl-tool-" + hashlib.sha256(f"{i}:{text}".encode()).hexdigest()[:16]


# -- logprobs --------------------------------------------------------------------------------------


def _unit(seed: bytes, *parts: int) -> float:
    """A fixed pseudo-random number in [0, 1) for (seed, parts)."""
    digest = hashlib.blake2b(seed + struct.pack(f">{len(parts)}q", *parts), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def token_logprob(prompt_ids: list[int], position: int, token_id: int, *, seed: Optional[bytes] = None) -> float:
    """The sampled token's logprob: in [-4, -1e-6], fixed by (prompt ids, position, token).
    `seed`: `_seed(prompt_ids)` when the caller has it (it hashes the whole prompt)."""
    return -(1e-6 + 4.0 * _unit(seed or _seed(prompt_ids), position, token_id) ** 3)


def _seed(prompt_ids: list[int]) -> bytes:
    return hashlib.sha256(",".join(map(str, prompt_ids)).encode()).digest()


def _decoded(ids: list[int], prev: Optional[int]) -> list[str]:
    """Each id decoded alone, with vLLM's fix for a partial UTF-8 character (module doc, 6);
    `ids` are one position's [sampled, alternatives...], `prev` the previous sampled id."""
    tok = tokenizer()
    out = [tok.decode([i], skip_special_tokens=False) for i in ids]
    fixed = {}
    for idx, text in enumerate(out):
        if text.endswith("\ufffd"):
            fixed[idx] = ""
            candidates = ([ids[idx - 1 : idx + 1]] if idx > 0 else []) + (
                [[prev] + ids[max(idx - 1, 0) : idx + 1]] if prev is not None else []
            )
            for c in candidates:
                s = tok.decode(c, skip_special_tokens=False)
                if not s.endswith("\ufffd"):
                    fixed[idx] = s
                    break
    return [fixed.get(i, t) for i, t in enumerate(out)]


def logprobs_content(prompt_ids: list[int], ids: list[int], *, top_logprobs: int = 0, as_token_ids: bool = False) -> list[dict]:
    """`choices[0].logprobs.content`: one entry per completion id (module doc, 6). The
    alternatives are pseudo-random ids whose probabilities share what the sampled token leaves,
    halving by rank. top_logprobs -1 (vLLM: the whole vocabulary) is answered with 20."""
    k = 20 if top_logprobs == -1 else max(top_logprobs or 0, 0)
    seed, vocab, entries = _seed(prompt_ids), tokenizer().get_vocab_size(), []
    for pos, tid in enumerate(ids):
        lp = token_logprob(prompt_ids, pos, tid, seed=seed)
        rest = max(1.0 - math.exp(lp), 1e-12)
        ranked: dict[int, float] = {tid: lp}
        for j in range(4 * k + 4):
            if len(ranked) > k:
                break
            ranked.setdefault(int(_unit(seed, pos, -1 - j) * vocab), max(math.log(rest / 2.0 ** len(ranked)), -9999.0))
        order = list(dict.fromkeys([tid] + sorted(ranked, key=lambda t: -ranked[t])[:k]))[: max(k, 1)]
        texts = _decoded(order, ids[pos - 1] if pos else None)
        tokens = [f"token_id:{t}" if as_token_ids else s for t, s in zip(order, texts)]
        top = (
            [
                {"token": tok, "logprob": ranked[t], "bytes": list(tok.encode("utf-8", errors="replace"))}
                for t, tok in zip(order, tokens)
            ]
            if k
            else []
        )
        entries.append(
            {"token": tokens[0], "logprob": lp, "bytes": list(texts[0].encode("utf-8", errors="replace")), "top_logprobs": top}
        )
    return entries


# -- the response ----------------------------------------------------------------------------------


def wants_tokens(body: dict) -> bool:
    """Whether a request asks for vLLM's token fields (return_token_ids and/or logprobs)."""
    return bool(body.get("return_token_ids") or body.get("logprobs"))


def vllm_response(
    body: dict, message: dict, *, response_id: str, created: int, drift: Optional[str] = None, old_server: bool = False
) -> tuple[int, dict]:
    """(HTTP status, JSON body) of vLLM's answer to chat request `body` when its model writes
    `message` (module doc, 7). `drift` (one of DRIFT_MODES) changes how the model writes it;
    `old_server` answers as a vLLM older than 0.10.2, which ignores return_token_ids."""
    tools = body.get("tools")
    tool_choice = body.get("tool_choice", "auto" if tools else "none")
    from jinja2 import TemplateError

    try:
        _, prompt_ids = render_prompt(body.get("messages") or [], tools)
    except (ValueError, TypeError, LookupError, TemplateError) as e:  # vLLM: 400 (e.g. arguments not JSON)
        return 400, {"error": {"message": str(e), "type": "BadRequestError", "param": None, "code": 400}}
    calls_wanted = bool(tools) and tool_choice != "none" and bool(message.get("tool_calls"))
    text, ids = completion(message, tool_choice=tool_choice if calls_wanted else "auto", drift=drift)
    cap = body.get("max_completion_tokens") if body.get("max_completion_tokens") is not None else body.get("max_tokens")
    truncated = cap is not None and len(ids) > cap
    if truncated:
        ids = ids[:cap]
    text = decode(ids[:-1] if not truncated else ids)
    parse_choice = tool_choice if calls_wanted or tool_choice in ("auto", None) else "none"
    reply = parse_completion(
        text,
        tools=bool(tools) and tool_choice != "none",
        tool_choice=parse_choice,
        call_ids=[tc.get("id") for tc in message.get("tool_calls") or []],
    )
    if isinstance(tool_choice, dict):
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
