"""What a policy call produced, token for token, as the inference server reported it.

Token capture asks vLLM's OpenAI server for the tokens of each completion (`CAPTURE_MODES`):

- `token_ids` (vLLM >= 0.10.2): `return_token_ids: true` makes the response carry the rendered
  prompt's ids (`prompt_token_ids`, top level) and each choice's completion ids (`token_ids`,
  the stop token included); `logprobs: true, top_logprobs: 0` adds one `logprobs.content` entry
  per completion token;
- `tokens_as_ids` (older servers): `logprobs` with `return_tokens_as_token_ids: true` names each
  logprob entry's token `token_id:<id>`; completion ids and logprobs come from there, and the
  prompt's ids are not available (no stitched view).

`turn_record(data, mode)` reads one response into a `TurnRecord`, or raises `CaptureError`
saying what the server left out. Token data is exact or absent: ids and logprobs are taken as
the server sent them and must align one to one; nothing is re-tokenized or patched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

CAPTURE_MODES = ("token_ids", "tokens_as_ids")
_TOKEN_ID_PREFIX = "token_id:"


class CaptureError(ValueError):
    """The server's answer lacks token data the capture asked for, or it does not align."""


def capture_fields(mode: str) -> dict[str, Any]:
    """The request fields that ask the server for a completion's tokens (see module doc)."""
    if mode == "token_ids":
        return {"logprobs": True, "top_logprobs": 0, "return_token_ids": True}
    if mode == "tokens_as_ids":
        return {"logprobs": True, "top_logprobs": 0, "return_tokens_as_token_ids": True}
    raise ValueError(f"unknown capture mode '{mode}'; valid: {', '.join(CAPTURE_MODES)}")


@dataclass
class TurnRecord:
    """One policy call: the tokens the server saw and sampled, and where the result went.

    `message_index` is the index, in the episode's tau2 messages, of the assistant message this
    completion became (None: an empty reply that was regenerated, as tau2 does, and so never
    became a message). `weight_version` is the trainer's tag of the request (servers do not
    report it)."""

    prompt_token_ids: Optional[list[int]]
    completion_token_ids: list[int]
    completion_logprobs: list[float]
    finish_reason: Optional[str]
    weight_version: Optional[int] = None
    message_index: Optional[int] = None
    latency_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = {name: getattr(self, name) for name in self.__dataclass_fields__}
        for name in ("prompt_token_ids", "completion_token_ids", "completion_logprobs"):
            if d[name] is not None:
                d[name] = list(d[name])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TurnRecord:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def turn_record(data: dict, mode: str, *, weight_version: Optional[int] = None, latency_s: float = 0.0) -> TurnRecord:
    """The TurnRecord of a chat-completions answer (first choice). Raises CaptureError."""
    choice = data["choices"][0]
    entries = (choice.get("logprobs") or {}).get("content")
    if not isinstance(entries, list):
        raise CaptureError("the answer has no logprobs.content: the server ignored `logprobs`")
    logprobs = [e.get("logprob") for e in entries]
    if not all(isinstance(x, (int, float)) and math.isfinite(x) for x in logprobs):
        raise CaptureError("the answer has logprobs that are not finite numbers")
    if mode == "token_ids":
        prompt, completion = data.get("prompt_token_ids"), choice.get("token_ids")
        if prompt is None or completion is None:
            raise CaptureError(
                "the answer has no prompt_token_ids / token_ids: the server ignored `return_token_ids` "
                "(vLLM older than 0.10.2? use llm.capture=tokens_as_ids)"
            )
    elif mode == "tokens_as_ids":
        prompt = None
        try:
            completion = [
                int(e["token"].removeprefix(_TOKEN_ID_PREFIX))
                for e in entries
                if e["token"].startswith(_TOKEN_ID_PREFIX) or _fail()
            ]
        except (KeyError, AttributeError, ValueError):
            raise CaptureError(
                "logprobs tokens are not `token_id:<id>`: the server ignored `return_tokens_as_token_ids`"
            ) from None
    else:
        raise ValueError(f"unknown capture mode '{mode}'")
    if not _ids(completion) or (prompt is not None and not _ids(prompt)):
        raise CaptureError("token ids are not lists of integers")
    if len(completion) != len(logprobs):
        raise CaptureError(f"{len(completion)} completion ids but {len(logprobs)} logprobs")
    return TurnRecord(
        prompt_token_ids=prompt,
        completion_token_ids=completion,
        completion_logprobs=[float(x) for x in logprobs],
        finish_reason=choice.get("finish_reason"),
        weight_version=weight_version,
        latency_s=round(latency_s, 4),
    )


def _fail() -> bool:
    raise ValueError


def _ids(value: Any) -> bool:
    return isinstance(value, list) and set(map(type, value)) <= {int}  # bool is not an id
