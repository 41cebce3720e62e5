"""A completion's text back into the assistant message a chat endpoint would have returned.

Token-in mode samples through the engine's token interface, so the parsing vLLM's chat endpoint
does server-side (`--reasoning-parser`, `--tool-call-parser`) happens here, client-side, under
vLLM's names, so that tau2 records what the chat endpoint with those parsers would have given it:

- reasoning (`qwen3`, vLLM's `Qwen3ReasoningParser.extract_reasoning`): a `<think>` in the text
  is dropped (everything before it too); with `</think>` the text before it is the reasoning and
  the text after it the content (None when empty); without `</think>`, thinking disabled
  (`enable_thinking: false` in the template kwargs) makes all of it content, a `<tool_call>`
  followed by `<function` ends the reasoning there, and otherwise all of it is reasoning (the
  completion was cut inside its think block);
- tool calls (`hermes`, vLLM's `Hermes2ProToolParser.extract_tool_calls`): without
  `<tool_call>` the text is the content; otherwise every `<tool_call>(.*?)</tool_call>` (or an
  unclosed last one) is `json.loads`ed into {"name", "arguments"}, arguments re-serialised with
  `json.dumps(..., ensure_ascii=False)`, the content is the text before the first `<tool_call>`
  (None when empty), and any failure gives no calls and the whole text as content. Then, as
  vLLM's chat serving does, content that is only whitespace becomes None.

Call ids are not part of a completion: vLLM invents `chatcmpl-tool-<random>`; here they are
`chatcmpl-tool-<16 hex digits>` numbered within the episode.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Optional

from rollout.core.clients import RawToolCall
from rollout.core.config.schema import REASONING_PARSERS, TOOL_CALL_PARSERS

_HERMES_CALL = re.compile(r"<tool_call>(.*?)</tool_call>|<tool_call>(.*)", re.DOTALL)
_FUNCTION_OPEN = re.compile(r"<function[\s=]")


@dataclass
class ParsedReply:
    """What a chat endpoint's message would hold: content (None, "" or text), tool calls, and the
    reasoning a reasoning parser took out (not shown to tau2)."""

    content: Optional[str]
    tool_calls: list[RawToolCall] = field(default_factory=list)
    reasoning: Optional[str] = None


def split_reasoning(text: str, parser: Optional[str], *, thinking_enabled: bool = True) -> tuple[Optional[str], Optional[str]]:
    """(reasoning, content) of a completion's text (module doc). No parser: (None, text)."""
    if parser is None:
        return None, text
    if parser != "qwen3":
        raise ValueError(f"unknown reasoning parser '{parser}'; valid: {', '.join(REASONING_PARSERS)}")
    before, start, after = text.partition("<think>")
    text = after if start else before
    if "</think>" in text:
        reasoning, _, content = text.partition("</think>")
        return reasoning, content or None
    if not thinking_enabled:
        return None, text
    at = text.find("<tool_call>")
    if at != -1 and _FUNCTION_OPEN.match(text[at + len("<tool_call>") :].lstrip()):
        return text[:at] or None, text[at:] or None
    return text, None


def hermes_calls(text: str) -> tuple[Optional[str], list[tuple[str, str]]]:
    """(content, [(name, arguments JSON)]) of a text, as vLLM's hermes parser reads it."""
    if "<tool_call>" not in text:
        return text, []
    try:
        found = [json.loads(closed or unclosed) for closed, unclosed in _HERMES_CALL.findall(text)]
        calls = [(str(f["name"]), json.dumps(f["arguments"], ensure_ascii=False)) for f in found]
    except Exception:  # vLLM: any failure leaves the text as content, no calls
        return text, []
    content = text[: text.find("<tool_call>")]
    return content or None, calls


def parse_reply(
    text: str,
    *,
    tool_call_parser: Optional[str],
    reasoning_parser: Optional[str],
    thinking_enabled: bool = True,
    first_call_id: int = 0,
) -> ParsedReply:
    """The message a chat endpoint with these parsers returns for a completion's text (module
    doc); the calls are numbered from `first_call_id` (unique within an episode)."""
    reasoning, content = split_reasoning(text, reasoning_parser, thinking_enabled=thinking_enabled)
    calls: list[tuple[str, str]] = []
    if tool_call_parser is not None:
        if tool_call_parser not in TOOL_CALL_PARSERS:
            raise ValueError(f"unknown tool call parser '{tool_call_parser}'; valid: {', '.join(TOOL_CALL_PARSERS)}")
        if content is not None:
            content, calls = hermes_calls(content)
        if content is not None and not content.strip():
            content = None
    return ParsedReply(
        content=content,
        tool_calls=[
            RawToolCall(id=f"chatcmpl-tool-{first_call_id + i:016x}", name=name, arguments=args)
            for i, (name, args) in enumerate(calls)
        ],
        reasoning=reasoning,
    )
