"""What a policy call produced, token for token, as the inference server reported it.

Token capture records the tokens of each completion (`CAPTURE_MODES`). Two modes read them
from a chat endpoint's answer:

- `token_ids` (vLLM >= 0.10.2): `return_token_ids: true` makes the response carry the rendered
  prompt's ids (`prompt_token_ids`, top level) and each choice's completion ids (`token_ids`,
  the stop token included); `logprobs: true, top_logprobs: 0` adds one `logprobs.content` entry
  per completion token;
- `tokens_as_ids` (older servers): `logprobs` with `return_tokens_as_token_ids: true` names each
  logprob entry's token `token_id:<id>`; completion ids and logprobs come from there, and the
  prompt's ids are not available (no stitched view).

The third, `token_in`, does not use the chat endpoint at all: the episode's context is kept as
ids client-side and sent to the engine's token interface (rollout/core/tokenin/), so the prompt
of every call extends the previous prompt and completion by construction.

`turn_record(data, mode)` reads one chat answer into a `TurnRecord`, or raises `CaptureError`
saying what the server left out or got wrong. Token data is exact or absent: ids and logprobs
are taken as the server sent them, range-checked (`check_ids`, `check_logprobs`) and must align
one to one; nothing is re-tokenized or patched. The ids are read where vLLM puts them
(`prompt_token_ids` at the top level, `token_ids` on the choice) or where SGLang's chat endpoint
does (`prompt_token_ids` and `response_token_ids` on the choice).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

CAPTURE_MODES = ("token_ids", "tokens_as_ids", "token_in")
CHAT_CAPTURE_MODES = ("token_ids", "tokens_as_ids")  # read from a chat endpoint's answer
_TOKEN_ID_PREFIX = "token_id:"
MAX_TOKEN_ID = 2**31 - 1  # no vocabulary is larger; engines use int32 ids
PLACEHOLDER_LOGPROB = -9999.0  # vLLM's stand-in where it has no logprob; never a sampled one


class CaptureError(ValueError):
    """The server's answer lacks token data the capture asked for, or it does not align."""


class OptionIgnored(CaptureError):
    """The server answered without the token data an option asks for: it ignored `option`."""

    def __init__(self, message: str, option: str):
        super().__init__(message)
        self.option = option


def capture_fields(mode: str) -> dict[str, Any]:
    """The request fields that ask the server for a completion's tokens (see module doc)."""
    if mode == "token_ids":
        return {"logprobs": True, "top_logprobs": 0, "return_token_ids": True}
    if mode == "tokens_as_ids":
        return {"logprobs": True, "top_logprobs": 0, "return_tokens_as_token_ids": True}
    raise ValueError(f"unknown chat capture mode '{mode}'; valid: {', '.join(CHAT_CAPTURE_MODES)}")


def check_ids(ids: Any, what: str, vocab_size: int = 0) -> None:
    """Raise CaptureError unless `ids` is a list of integers in [0, vocab_size) (any size below
    2**31 when the vocabulary is unknown, 0)."""
    if not isinstance(ids, list) or not all(type(i) is int for i in ids):  # bool is not an id
        raise CaptureError(f"the server's {what} are not a list of integers")
    bound = vocab_size or MAX_TOKEN_ID + 1
    bad = next((i for i in ids if not 0 <= i < bound), None)
    if bad is not None:
        raise CaptureError(f"the server's {what} hold {bad}, outside [0, {bound}): not a token of this model")


def check_logprobs(logprobs: list, n_ids: int) -> None:
    """Raise CaptureError unless there is one sampled logprob per completion id, each a finite
    number <= 0 and not vLLM's -9999.0 placeholder."""
    if len(logprobs) != n_ids:
        raise CaptureError(f"the server is misaligned: {n_ids} completion ids but {len(logprobs)} logprobs")
    for x in logprobs:
        if not isinstance(x, (int, float)) or isinstance(x, bool) or not math.isfinite(x):
            raise CaptureError(f"the server sent a logprob that is not a finite number: {x!r}")
        if x > 0.0:
            raise CaptureError(f"the server sent a logprob above 0 ({x}): not a log-probability")
        if x == PLACEHOLDER_LOGPROB:
            raise CaptureError("the server sent vLLM's -9999.0 placeholder, not a sampled logprob")


@dataclass
class TurnRecord:
    """One policy call: the tokens the server saw and sampled, and where the result went.

    `message_index` is the index, in the episode's tau2 messages, of the assistant message this
    completion became (None: an empty reply that was regenerated, as tau2 does, and so never
    became a message). `weight_version` is the trainer's tag of the request; `served_version`
    is the weight version the engine reported for the answer, where it reports one (SGLang; for a
    continued call, its last answer's). `completion_versions` holds, one per completion id, the
    weight version that produced the token (rollout/core/weights.py `token_version`; None, or a
    None entry: no version is known). `continued` counts the times the engine aborted this call and the rest
    was generated from the tokens so far (token-in); `restarted` the times an aborted call was
    sent again from scratch (chat capture and no capture)."""

    prompt_token_ids: Optional[list[int]]
    completion_token_ids: list[int]
    completion_logprobs: list[float]
    finish_reason: Optional[str]
    weight_version: Optional[int] = None
    message_index: Optional[int] = None
    latency_s: float = 0.0
    served_version: Optional[str] = None
    completion_versions: Optional[list[Optional[int]]] = None
    continued: int = 0
    restarted: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = {name: getattr(self, name) for name in self.__dataclass_fields__}
        for name in ("prompt_token_ids", "completion_token_ids", "completion_logprobs", "completion_versions"):
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
        raise OptionIgnored("the answer has no logprobs.content: the server ignored `logprobs`", "logprobs")
    logprobs = [e.get("logprob") if isinstance(e, dict) else None for e in entries]
    if mode == "token_ids":
        prompt = data.get("prompt_token_ids", choice.get("prompt_token_ids"))  # vLLM: top level; SGLang: per choice
        completion = choice.get("token_ids", choice.get("response_token_ids"))  # vLLM | SGLang
        if prompt is None and completion is None:
            raise OptionIgnored(
                "the answer has no prompt_token_ids / token_ids: the server ignored `return_token_ids` "
                "(vLLM older than 0.10.2? use llm.capture=tokens_as_ids, or llm.capture=token_in)",
                "return_token_ids",
            )
        if prompt is None or completion is None:
            missing = "prompt_token_ids" if prompt is None else "token_ids"
            raise CaptureError(f"the answer has token ids but no {missing} (looked at the top level and on the choice)")
        check_ids(prompt, "prompt ids")
    elif mode == "tokens_as_ids":
        prompt = None
        try:
            completion = [
                int(e["token"].removeprefix(_TOKEN_ID_PREFIX))
                for e in entries
                if e["token"].startswith(_TOKEN_ID_PREFIX) or _fail()
            ]
        except (KeyError, AttributeError, ValueError, TypeError):
            raise OptionIgnored(
                "logprobs tokens are not `token_id:<id>`: the server ignored `return_tokens_as_token_ids`",
                "return_tokens_as_token_ids",
            ) from None
    else:
        raise ValueError(f"unknown chat capture mode '{mode}'; valid: {', '.join(CHAT_CAPTURE_MODES)}")
    check_ids(completion, "completion ids")
    check_logprobs(logprobs, len(completion))
    if not completion and (choice.get("message") or {}).get("content"):
        raise CaptureError("the server sent no completion ids for a reply with text")
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
