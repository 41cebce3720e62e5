"""The engines' token interfaces: a prompt of token ids in, completion ids and logprobs out.

- `vllm`: `POST {base_url}/completions` (vLLM's OpenAI server, base_url ending in /v1) with
  `prompt` = the ids, `max_tokens`, `logprobs: 0` (the sampled token's logprob) and
  `return_token_ids: true`; the answer's first choice carries `token_ids` (the completion, its
  stop token included), `prompt_token_ids` (the prompt as the engine took it) and
  `logprobs.token_logprobs` (one per completion id), `finish_reason` (stop, length, abort).
  Sampling fields keep their names (temperature, top_p, top_k, min_p, seed, stop, ...).
- `sglang`: `POST {server root}/generate` (base_url without its /v1) with `input_ids`,
  `sampling_params` (max_tokens as `max_new_tokens`, seed as `sampling_seed`, min_tokens as
  `min_new_tokens`, the other sampling fields by name) and `return_logprob: true`; the answer's
  `meta_info.output_token_logprobs` is `[[logprob, token_id, text], ...]`, one per completion
  token, `meta_info.finish_reason` is `{"type": stop|length|abort, ...}` and
  `meta_info.weight_version` names the weights that served it.

`read_answer` checks what it reads: ids are non-negative integers below the vocabulary size,
logprobs finite and <= 0 (vLLM's -9999.0 placeholder is not a sampled logprob), ids and
logprobs one to one, the prompt echoed as sent (vLLM) — or raises `CaptureError` naming the
server's fault.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from rollout.core.config.schema import ENGINES
from rollout.core.tokens import CaptureError, OptionIgnored, check_ids, check_logprobs

SAMPLING_FIELDS = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "seed",
    "stop",
    "stop_token_ids",
    "max_tokens",
    "min_tokens",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
)
_SGLANG_NAMES = {"max_tokens": "max_new_tokens", "seed": "sampling_seed", "min_tokens": "min_new_tokens"}
# chat-only fields: the token interface has no messages, tools or server-side parsing
CHAT_ONLY_FIELDS = ("tool_choice", "parallel_tool_calls", "chat_template_kwargs", "include_reasoning", "response_format")


@dataclass
class EngineAnswer:
    """One completion as the engine reported it."""

    completion_ids: list[int]
    logprobs: list[float]
    finish_reason: Optional[str]
    weight_version: Optional[str] = None
    prompt_tokens: int = 0


def route(engine: str, base_url: str) -> tuple[str, str]:
    """(base URL, path) of the engine's token route for a configured base_url."""
    if engine == "vllm":
        return base_url, "/completions"
    if engine == "sglang":
        root = base_url.rstrip("/")
        return (root[: -len("/v1")] if root.endswith("/v1") else root), "/generate"
    raise ValueError(f"unknown engine '{engine}'; valid: {', '.join(ENGINES)}")


def request_body(engine: str, model: str, prompt_ids: list[int], fields: dict[str, Any]) -> dict[str, Any]:
    """The token route's request body for a prompt and the chat-style request `fields`
    (sampling and server options; chat-only fields are left out)."""
    fields = {k: v for k, v in fields.items() if k not in CHAT_ONLY_FIELDS}
    if engine == "vllm":
        return {"model": model, "prompt": list(prompt_ids), **fields, "logprobs": 0, "return_token_ids": True}
    sampling = {_SGLANG_NAMES.get(k, k): v for k, v in fields.items() if k in SAMPLING_FIELDS}
    rest = {k: v for k, v in fields.items() if k not in SAMPLING_FIELDS}
    return {**rest, "input_ids": list(prompt_ids), "sampling_params": sampling, "return_logprob": True, "stream": False}


def read_answer(engine: str, data: Any, prompt_ids: list[int], *, vocab_size: int) -> EngineAnswer:
    """The completion of a token route's answer (module doc). Raises CaptureError."""
    if not isinstance(data, dict):
        raise CaptureError(f"the {engine} answer is not a JSON object")
    if engine == "vllm":
        return _read_vllm(data, prompt_ids, vocab_size)
    return _read_sglang(data, vocab_size)


def _read_vllm(data: dict, prompt_ids: list[int], vocab_size: int) -> EngineAnswer:
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise CaptureError("the vLLM answer has no choices: not a /v1/completions answer")
    choice = choices[0]
    ids = choice.get("token_ids")
    if ids is None:
        raise OptionIgnored(
            "the vLLM answer has no token_ids: the server ignored `return_token_ids` (vLLM >= 0.10.2 needed)", "return_token_ids"
        )
    check_ids(ids, "completion ids", vocab_size)
    echoed = choice.get("prompt_token_ids")
    if echoed is not None and list(echoed) != list(prompt_ids):
        raise CaptureError(f"the server's prompt_token_ids ({len(echoed)}) are not the {len(prompt_ids)} ids sent")
    token_logprobs = (choice.get("logprobs") or {}).get("token_logprobs")
    if not isinstance(token_logprobs, list):
        raise OptionIgnored("the vLLM answer has no logprobs.token_logprobs: the server ignored `logprobs`", "logprobs")
    check_logprobs(token_logprobs, len(ids))
    usage = data.get("usage") or {}
    return EngineAnswer(
        completion_ids=list(ids),
        logprobs=[float(x) for x in token_logprobs],
        finish_reason=choice.get("finish_reason"),
        prompt_tokens=int(usage.get("prompt_tokens") or len(prompt_ids)),
    )


def _read_sglang(data: dict, vocab_size: int) -> EngineAnswer:
    meta = data.get("meta_info")
    if not isinstance(meta, dict):
        raise CaptureError("the SGLang answer has no meta_info: not a /generate answer")
    entries = meta.get("output_token_logprobs")
    if not isinstance(entries, list) or not all(isinstance(e, (list, tuple)) and len(e) >= 2 for e in entries):
        raise OptionIgnored(
            "the SGLang answer has no meta_info.output_token_logprobs: the server ignored `return_logprob`", "return_logprob"
        )
    ids = [e[1] for e in entries]
    check_ids(ids, "completion ids", vocab_size)
    output_ids = data.get("output_ids")
    if output_ids is not None and list(output_ids) != ids:
        raise CaptureError(f"output_ids ({len(output_ids)}) and output_token_logprobs ({len(ids)}) name different tokens")
    logprobs = [e[0] for e in entries]
    check_logprobs(logprobs, len(ids))
    finish = meta.get("finish_reason")
    reason = finish.get("type") if isinstance(finish, dict) else finish
    version = meta.get("weight_version")
    return EngineAnswer(
        completion_ids=ids,
        logprobs=[float(x) for x in logprobs],
        finish_reason=reason,
        weight_version=None if version is None else str(version),
        prompt_tokens=int(meta.get("prompt_tokens") or 0),
    )
