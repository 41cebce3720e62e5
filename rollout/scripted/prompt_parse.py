"""Read a rendered Qwen prompt back into the chat request it was rendered from.

The token endpoints (vLLM `/v1/completions` with a token-id prompt, SGLang `/generate`) receive
only ids. To play the same player as the chat endpoint, the scripted server decodes them (special
tokens kept) and reads the model's own format back: ChatML turns
`<|im_start|>{role}\\n{content}<|im_end|>\\n`; a system turn holding the template's tools block
(`# Tools ... <tools>\\n{one tool JSON a line}\\n</tools> ...`, after the system content and "\\n\\n");
user turns made of `\\n<tool_response>\\n{content}\\n</tool_response>` blocks are tool messages (one
each; tool_call_id from the preceding assistant turn's calls, by position); assistant turns are
`[<think>\\n{reasoning}\\n</think>\\n\\n]{content}[\\n]<tool_call>\\n{"name": ..., "arguments": ...}\\n</tool_call>...`;
a final open `<|im_start|>assistant\\n` is the generation prompt, and an empty think block after
it means `enable_thinking: false`.

`parse_prompt` gives {"messages", "tools", "chat_template_kwargs"}: re-rendering it with the same
template gives the same text (tests check this on tau2 conversations). Call ids are not in the
prompt: calls get `call_{message index}_{call index}`.
"""

from __future__ import annotations

import json
import re
from typing import Optional

TOOLS_HEADER = "# Tools\n\nYou may call one or more functions to assist with the user query."
_TURN_RE = re.compile(r"<\|im_start\|>(\w+)\n?(.*?)(<\|im_end\|>\n?|\Z)", re.S)
_TOOLS_RE = re.compile(r"<tools>\n(.*?)\n</tools>", re.S)
_RESPONSE_RE = re.compile(r"\n<tool_response>\n(.*?)\n</tool_response>", re.S)
_CALL_RE = re.compile(r"<tool_call>\n(.*?)\n</tool_call>", re.S)
EMPTY_THINK = "<think>\n\n</think>\n\n"


class PromptError(ValueError):
    """The prompt is not a chat template render this server can read."""


def parse_prompt(text: str) -> dict:
    """The chat request a rendered prompt (decoded with special tokens) came from (module doc)."""
    messages: list[dict] = []
    tools: Optional[list[dict]] = None
    kwargs: dict = {}
    turns = list(_TURN_RE.finditer(text))
    if not turns or not text.startswith("<|im_start|>"):
        raise PromptError("prompt does not start with a ChatML turn ('<|im_start|>')")
    for i, turn in enumerate(turns):
        role, body, end = turn.group(1), turn.group(2), turn.group(3)
        if not end:  # the open generation prompt
            if role != "assistant" or i != len(turns) - 1:
                raise PromptError(f"unterminated '{role}' turn inside the prompt")
            if body == EMPTY_THINK:
                kwargs["enable_thinking"] = False
            elif body:
                raise PromptError("the generation prompt has text after '<|im_start|>assistant'")
            break
        if role == "system" and i == 0 and TOOLS_HEADER in body:
            head, _, block = body.partition(TOOLS_HEADER)
            found = _TOOLS_RE.search(block)
            if found is None:
                raise PromptError("system turn has a tools header but no <tools> block")
            tools = [json.loads(line) for line in found.group(1).split("\n") if line]
            if head:
                messages.append({"role": "system", "content": head.removesuffix("\n\n")})
        elif role == "user" and body.startswith("<tool_response>\n") and body.endswith("\n</tool_response>"):
            calls = next((m.get("tool_calls") or [] for m in reversed(messages) if m["role"] == "assistant"), [])
            for j, content in enumerate(_RESPONSE_RE.findall("\n" + body)):
                messages.append(
                    {"role": "tool", "tool_call_id": calls[j]["id"] if j < len(calls) else f"call_{j}", "content": content}
                )
        elif role == "assistant":
            messages.append(_assistant(body, len(messages)))
        else:
            messages.append({"role": role, "content": body})
    else:
        raise PromptError("prompt does not end with the generation prompt '<|im_start|>assistant\\n'")
    return {"messages": messages, "tools": tools, "chat_template_kwargs": kwargs}


def _assistant(body: str, index: int) -> dict:
    message: dict = {"role": "assistant"}
    if body.startswith("<think>\n") and "\n</think>\n\n" in body:
        reasoning, _, body = body[len("<think>\n") :].partition("\n</think>\n\n")
        message["reasoning_content"] = reasoning
    first = body.find("<tool_call>\n")
    if first < 0:
        message["content"] = body
        return message
    message["content"] = body[:first].removesuffix("\n")
    calls = []
    for j, raw in enumerate(_CALL_RE.findall(body[first:])):
        call = json.loads(raw)
        args = call.get("arguments")
        calls.append(
            {
                "id": f"call_{index}_{j}",
                "type": "function",
                "function": {
                    "name": call.get("name"),
                    "arguments": args if isinstance(args, str) else json.dumps(args, ensure_ascii=False),
                },
            }
        )
    message["tool_calls"] = calls
    return message
