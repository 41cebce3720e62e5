"""The prompt side of vLLM's token protocol for a Qwen-style model: the tokenizer, the chat
template and the prompt a chat request renders to (chat_tokens.py is the completion side).

Data: the model directories of rollout/scripted/models (`qwen25`, `qwen3`: `tokenizer.json` and the
`chat_template` of `tokenizer_config.json`), built from `tokenizer/tau2-bpe.json`, a byte-level BPE
tokenizer in Qwen2.5's shape trained on tau2's texts (build.py says how and why), and Qwen2.5's
and Qwen3's chat templates verbatim (tokenizer/model_dirs.py). Every function takes the model's
name (`model`, default "qwen25"); transformers is not used here.

What vLLM does with a request's messages and tools, and so what this module does (checked in the
vLLM 0.19.1 wheel; the same code is in 0.12.0, paths as in 0.19.1, 0.12.0's in brackets, and in
transformers 4.57.1):

1. Messages (`conversation`): vllm/entrypoints/chat_utils.py `_parse_chat_message_content` keeps
   role, content, tool_calls (assistant), tool_call_id (tool) and name; content None becomes [] and
   the parts are joined with "\\n", so None -> "" (the Qwen2.5 template is "string" content format:
   vllm/renderers/hf.py `_detect_content_format` [chat_utils.py]). `_postprocess_messages` turns each
   assistant tool call's `function.arguments` JSON string into a dict (json.loads; "" or None -> {}),
   and (0.19) drops an empty tool_calls list. An assistant message's `reasoning` (or
   `reasoning_content`) string is handed on as both `reasoning` and `reasoning_content` (vLLM
   0.34 renderers/chat_utils/chat_message.py), which Qwen3's template reads.
2. Tools (`tool_dicts`): vllm/entrypoints/serve/render/serving.py `render_chat`
   [entrypoints/openai/serving_chat.py] passes `[tool.model_dump() for tool in request.tools]`:
   ChatCompletionToolsParam{type, function} and FunctionDefinition{name, description, parameters}
   with extra="allow" (entrypoints/openai/engine/protocol.py `OpenAIBaseModel`), so a missing
   description renders as null and extra keys such as "strict" follow the declared ones.
3. Rendering (`render`): vllm/renderers/hf.py `safe_apply_chat_template` calls transformers'
   `apply_chat_template(conversation, tools=..., chat_template=..., tokenize=False,
   add_generation_prompt=True, ...)`; transformers/utils/chat_template_utils.py
   `_compile_jinja_template` renders in an ImmutableSandboxedEnvironment(trim_blocks=True,
   lstrip_blocks=True, extensions=[AssistantTracker, loopcontrols]) with `tojson` =
   json.dumps(x, ensure_ascii=False, indent, separators, sort_keys) (no HTML escaping),
   `raise_exception` and `strftime_now`, and the special tokens map as extra variables.
   The request's `chat_template_kwargs` (e.g. {"enable_thinking": false} for Qwen3) are passed
   to the template beside them. The prompt is then tokenized without special tokens (ChatCompletionRequest.add_special_tokens
   defaults to False; Qwen2 has no BOS).
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any, Optional

from rollout.scripted.models import model_dir

DATA = Path(__file__).resolve().parent / "tokenizer"
DEFAULT_MODEL = "qwen25"
TOKENIZER_FILE = model_dir(DEFAULT_MODEL) / "tokenizer.json"
TEMPLATE_FILE = DATA / "qwen25_chat_template.jinja"
EOS = "<|im_end|>"  # the eos_token of Qwen2.5-Instruct and Qwen3
SPECIAL_TOKENS_MAP = {  # what transformers' apply_chat_template passes to the template beside messages
    "eos_token": EOS,
    "pad_token": "<|endoftext|>",
    "additional_special_tokens": [
        "<|im_start|>",
        "<|im_end|>",
        "<|object_ref_start|>",
        "<|object_ref_end|>",
        "<|box_start|>",
        "<|box_end|>",
        "<|quad_start|>",
        "<|quad_end|>",
        "<|vision_start|>",
        "<|vision_end|>",
        "<|vision_pad|>",
        "<|image_pad|>",
        "<|video_pad|>",
    ],
}

# -- loading ---------------------------------------------------------------------------------------


@functools.cache
def tokenizer(model: str = DEFAULT_MODEL):
    """The model's tokenizer (tokenizers.Tokenizer of its directory's tokenizer.json), loaded once."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(model_dir(model) / "tokenizer.json"))


@functools.cache
def template_text(model: str = DEFAULT_MODEL) -> str:
    """The `chat_template` of the model directory's tokenizer_config.json."""
    return json.loads((model_dir(model) / "tokenizer_config.json").read_text())["chat_template"]


@functools.cache
def template(model: str = DEFAULT_MODEL):
    """The model's chat template compiled as transformers compiles it (see the module doc, 3)."""
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class AssistantTracker(jinja2.ext.Extension):  # transformers' {% generation %} tag; inert here
        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_generation_support"), [], [], body).set_lineno(lineno)

        def _generation_support(self, caller):
            return caller()

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        import datetime

        return datetime.datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[AssistantTracker, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(template_text(model))


@functools.cache
def eos_id(model: str = DEFAULT_MODEL) -> int:
    return tokenizer(model).token_to_id(EOS)


def encode(text: str, model: str = DEFAULT_MODEL) -> list[int]:
    """`text`'s token ids, as encoding it whole gives them: the tokenizer splits its input at
    added tokens first (none strips or normalizes its neighbours) and encodes the pieces between
    them apart, so the pieces' ids are cached (a conversation's prompts repeat its messages)."""
    out: list[int] = []
    for piece in _added_tokens(model).split(text):
        if piece:
            out += _encode_piece(piece, model)
    return out


@functools.cache
def _added_tokens(model: str) -> re.Pattern:
    contents = sorted((t.content for t in tokenizer(model).get_added_tokens_decoder().values()), key=len, reverse=True)
    return re.compile("(" + "|".join(map(re.escape, contents)) + ")")


@functools.lru_cache(maxsize=8192)
def _encode_piece(piece: str, model: str) -> tuple[int, ...]:
    return tuple(tokenizer(model).encode(piece, add_special_tokens=False).ids)


def decode(ids: list[int], skip_special_tokens: bool = True, model: str = DEFAULT_MODEL) -> str:
    return tokenizer(model).decode(list(ids), skip_special_tokens=skip_special_tokens)


# -- the prompt ------------------------------------------------------------------------------------


def conversation(messages: list[dict]) -> list[dict]:
    """The messages as vLLM hands them to the template (module doc, 1). Raises ValueError (as
    vLLM answers 400) for tool-call arguments that are not JSON."""
    out = []
    for m in messages:
        role = m["role"]
        msg: dict[str, Any] = {"role": role, "content": content_text(m.get("content"))}
        if role == "assistant" and m.get("tool_calls") is not None:
            calls = []
            for tc in m["tool_calls"]:
                fn = dict(tc.get("function") or {})
                args = fn.get("arguments")
                fn["arguments"] = (json.loads(args) if not isinstance(args, (dict, list)) else args) if args else {}
                calls.append({**{k: v for k, v in tc.items() if k != "function"}, "function": fn})
            if calls:
                msg["tool_calls"] = calls
        elif role == "tool" and "tool_call_id" in m:
            msg["tool_call_id"] = m["tool_call_id"]
        if role == "assistant":
            reasoning = m.get("reasoning") if m.get("reasoning") is not None else m.get("reasoning_content")
            if isinstance(reasoning, str):
                msg["reasoning"] = msg["reasoning_content"] = reasoning
        if isinstance(m.get("name"), str):
            msg["name"] = m["name"]
        out.append(msg)
    return out


def content_text(content) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(
        p if isinstance(p, str) else p.get("text", "") for p in content if isinstance(p, str) or p.get("type") == "text"
    )


def tool_dicts(tools: Optional[list[dict]]) -> Optional[list[dict]]:
    """The request's tools as vLLM passes them to the template (module doc, 2)."""
    if tools is None:
        return None
    out = []
    for t in tools:
        fn = t.get("function") or {}
        fdef = {"name": fn.get("name"), "description": fn.get("description"), "parameters": fn.get("parameters")}
        fdef.update((k, v) for k, v in fn.items() if k not in fdef)
        tool = {"type": t.get("type", "function"), "function": fdef}
        tool.update((k, v) for k, v in t.items() if k not in tool)
        out.append(tool)
    return out


def render(
    messages: list[dict],
    tools: Optional[list[dict]] = None,
    add_generation_prompt: bool = True,
    *,
    model: str = DEFAULT_MODEL,
    chat_template_kwargs: Optional[dict] = None,
) -> str:
    """The prompt text vLLM renders for a chat request."""
    return template(model).render(
        **{
            **SPECIAL_TOKENS_MAP,
            "messages": conversation(messages),
            "tools": tool_dicts(tools),
            "documents": None,
            "add_generation_prompt": add_generation_prompt,
            **(chat_template_kwargs or {}),
        }
    )


def render_prompt(
    messages: list[dict],
    tools: Optional[list[dict]] = None,
    *,
    model: str = DEFAULT_MODEL,
    chat_template_kwargs: Optional[dict] = None,
) -> tuple[str, list[int]]:
    """(prompt text, prompt token ids) of a chat request, add_generation_prompt=True."""
    text = render(messages, tools, model=model, chat_template_kwargs=chat_template_kwargs)
    return text, encode(text, model)


def thinking(model: str, chat_template_kwargs: Optional[dict] = None) -> bool:
    """Whether the model writes a think block: Qwen3 unless the request turns it off
    (`enable_thinking: false`, which its template answers with an empty think block)."""
    return model == "qwen3" and (chat_template_kwargs or {}).get("enable_thinking", True) is not False
