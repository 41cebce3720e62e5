"""The policy model's own chat format, client-side: its tokenizer and chat template, loaded from
a local model directory with `transformers` (what vLLM and SGLang render chat requests with).

`ChatFormat.load(path, template_kwargs)` reads the directory an engine serves from (or a copy of
its tokenizer files). It gives:

- `first_prompt(messages, tools)`: the ids of the first prompt of an episode, exactly as the
  engine's `/v1/chat/completions` would render and tokenize that request: the messages and tool
  schemas prepared as vLLM prepares them (`engine_messages`, `engine_tools`), the template
  applied by transformers' `apply_chat_template` with the generation prompt and the request's
  `chat_template_kwargs`, the text tokenized without special tokens (vLLM's default for chat);
- `tail(assistant, after)`: the ids that follow a completion in the model's context: the
  template's text after the assistant turn's end-of-turn token, for the messages `after` it
  (tool results, the user's reply) and the generation prompt. Only those new messages are
  rendered: the template is applied to `[system, user, assistant, *after]` with a fixed system
  and user message and the assistant's content replaced by a sentinel (its tool calls kept), and
  the tail is the text after the first end-of-turn token that follows the sentinel. Earlier
  turns are never re-rendered, so whatever the template does to history (Qwen3 drops earlier
  think blocks, parsers and templates disagree on newlines and JSON spacing) cannot change the
  tokens the model already saw;
- `decode_completion(ids, tools=...)`: completion text as vLLM's chat endpoint detokenizes it.

Token-in keeps each episode's context as ids: prompt(n+1) = prompt(n) + completion(n) [+ the
end-of-turn id when the completion did not end with it] + tail(n). See docs/pool.md.
"""

from __future__ import annotations

import functools
import json
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from rollout.core.failures import InvalidInput
from rollout.core.tokenin.encoder import PieceEncoder

_SENTINEL = "\u2063tau2-rollout-assistant-turn\u2063"  # invisible separators: no template or text produces it
_FIXED_SYSTEM = {"role": "system", "content": "S"}
_FIXED_USER = {"role": "user", "content": "U"}
_FIRST_PROMPTS_KEPT = 256


def engine_messages(messages: list[dict]) -> list[dict]:
    """Chat messages as vLLM hands them to a chat template: content None becomes "", a list of
    parts is joined with newlines, each tool call's `function.arguments` JSON string becomes the
    parsed value ("" or None: {}), an empty tool_calls list is dropped. Raises InvalidInput for
    arguments that are not JSON (vLLM answers such a request 400)."""
    out = []
    for message in messages:
        m = {k: v for k, v in message.items() if k not in ("content", "tool_calls")}
        content = message.get("content")
        if isinstance(content, list):
            content = "\n".join(p if isinstance(p, str) else p.get("text", "") for p in content)
        m["content"] = content or ""
        calls = []
        for call in message.get("tool_calls") or []:
            fn = dict(call.get("function") or {})
            args = fn.get("arguments")
            if isinstance(args, str):
                try:
                    fn["arguments"] = json.loads(args) if args else {}
                except ValueError:
                    raise InvalidInput(f"tool call arguments are not JSON: {args[:80]!r}") from None
            elif args is None:
                fn["arguments"] = {}
            calls.append({**call, "function": fn})
        if calls:
            m["tool_calls"] = calls
        out.append(m)
    return out


def engine_tools(tools: Optional[list[dict]]) -> Optional[list[dict]]:
    """Tool schemas as vLLM passes them to a template: `{"type", "function": {"name",
    "description", "parameters", ...extra keys}, ...extra keys}` (a missing description is
    null)."""
    if not tools:
        return None
    out = []
    for tool in tools:
        fn = tool.get("function") or {}
        function = {"name": fn.get("name"), "description": fn.get("description"), "parameters": fn.get("parameters")}
        function.update({k: v for k, v in fn.items() if k not in function})
        entry = {"type": tool.get("type", "function"), "function": function}
        entry.update({k: v for k, v in tool.items() if k not in entry})
        out.append(entry)
    return out


def load_chat_format(path: str, template_kwargs: Optional[dict[str, Any]] = None) -> ChatFormat:
    """`ChatFormat.load`, once per process for the same directory and kwargs (a tokenizer takes
    a second to load and is read-only afterwards)."""
    return _cached(path, json.dumps(template_kwargs or {}, sort_keys=True))


@functools.lru_cache(maxsize=8)
def _cached(path: str, kwargs_json: str) -> ChatFormat:
    return ChatFormat.load(path, json.loads(kwargs_json))


@dataclass
class ChatFormat:
    """A model's tokenizer and chat template (see module doc). Use `ChatFormat.load`."""

    tokenizer: Any  # a transformers PreTrainedTokenizerBase
    path: str
    template_kwargs: dict[str, Any] = field(default_factory=dict)
    end_of_turn_id: int = -1
    end_of_turn: str = ""
    vocab_size: int = 0
    stop_ids: frozenset[int] = frozenset()  # ids that end a generation (EOS and generation_config's eos_token_id)
    _encoder: Optional[PieceEncoder] = field(default=None, repr=False)
    _first_prompts: OrderedDict = field(default_factory=OrderedDict, repr=False)  # request JSON -> ids (GRPO groups share)

    @classmethod
    def load(cls, path: str, template_kwargs: Optional[dict[str, Any]] = None) -> ChatFormat:
        """The chat format of the model directory `path`. Raises InvalidInput naming what is
        missing: the directory, a tokenizer transformers can load, a chat template, an EOS."""
        if not path:
            raise InvalidInput("llm.capture=token_in needs llm.tokenizer: the model directory the engine serves from")
        if not os.path.isdir(path):
            raise InvalidInput(f"llm.tokenizer={path!r} is not a directory (the model directory the engine serves from)")
        os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")  # "PyTorch was not found": expected here
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as e:
            raise InvalidInput(f"llm.tokenizer={path!r}: transformers cannot load a tokenizer from it ({e})") from None
        if not tokenizer.chat_template:
            raise InvalidInput(f"llm.tokenizer={path!r} has no chat template (tokenizer_config.json / chat_template.jinja)")
        if tokenizer.eos_token_id is None:
            raise InvalidInput(f"llm.tokenizer={path!r} names no eos_token (the end of an assistant turn)")
        return cls(
            tokenizer=tokenizer,
            path=str(Path(path).resolve()),
            template_kwargs=dict(template_kwargs or {}),
            end_of_turn_id=int(tokenizer.eos_token_id),
            end_of_turn=str(tokenizer.eos_token),
            vocab_size=len(tokenizer),
            stop_ids=frozenset({int(tokenizer.eos_token_id), *_generation_eos(Path(path))}),
        )

    def render(self, messages: list[dict], tools: Optional[list[dict]], *, generation_prompt: bool = True) -> str:
        """The template's text for engine-prepared messages and tools."""
        return self.tokenizer.apply_chat_template(
            messages,
            tools=tools,
            add_generation_prompt=generation_prompt,
            tokenize=False,
            **self.template_kwargs,
        )

    def encode(self, text: str) -> list[int]:
        """The ids of `text`, no special tokens added (as vLLM tokenizes a rendered chat prompt)."""
        if self._encoder is None:
            self._encoder = PieceEncoder(self.tokenizer)
        return self._encoder.encode(text)

    def decode_completion(self, ids: list[int], *, tools: bool) -> str:
        """A completion's text as vLLM's chat endpoint detokenizes it (its stop token left out by
        the caller): special tokens are skipped, except when a tool parser reads the text of a
        request with tools (vLLM's hermes parser turns skip_special_tokens off then)."""
        return self.tokenizer.decode(ids, skip_special_tokens=not tools)

    def first_prompt(self, messages: list[dict], tools: Optional[list[dict]]) -> list[int]:
        """The ids the engine's chat endpoint would render for this request (module doc); the
        samples of one task share their first request, so the last few are remembered."""
        key = json.dumps([messages, tools], sort_keys=True, separators=(",", ":"))
        ids = self._first_prompts.get(key)
        if ids is None:
            ids = self.encode(self.render(engine_messages(messages), engine_tools(tools)))
            self._first_prompts[key] = ids
            if len(self._first_prompts) > _FIRST_PROMPTS_KEPT:
                self._first_prompts.popitem(last=False)
        return list(ids)

    def tail(self, assistant: dict, after: list[dict]) -> list[int]:
        """The ids after an assistant turn's end-of-turn token: `after` (tool results, the user's
        reply) and the generation prompt, rendered on their own (module doc)."""
        stand_in = {
            "role": "assistant",
            "content": _SENTINEL,
            **({"tool_calls": [_bare_call(c) for c in assistant["tool_calls"]]} if assistant.get("tool_calls") else {}),
        }
        text = self.render(engine_messages([_FIXED_SYSTEM, _FIXED_USER, stand_in, *after]), None)
        at = text.find(_SENTINEL)
        end = text.find(self.end_of_turn, at) if at >= 0 else -1
        if end < 0:
            raise InvalidInput(
                f"the chat template of {self.path} does not end an assistant turn with its eos_token "
                f"{self.end_of_turn!r}: token-in cannot find where a completion ends"
            )
        return self.encode(text[end + len(self.end_of_turn) :])


def _bare_call(call: dict) -> dict:
    """A tool call with empty arguments: the tail's stand-in keeps the call, not its text."""
    fn = call.get("function") or {}
    return {"id": call.get("id", ""), "type": "function", "function": {"name": fn.get("name", ""), "arguments": {}}}


def _generation_eos(path: Path) -> list[int]:
    """generation_config.json's eos_token_id (one id or a list), which engines stop at too."""
    try:
        value = json.loads((path / "generation_config.json").read_text()).get("eos_token_id")
    except (OSError, ValueError, AttributeError):
        return []
    values = value if isinstance(value, list) else [value]
    return [int(v) for v in values if isinstance(v, int)]
