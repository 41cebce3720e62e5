"""The scripted model's logprobs, and the three layouts the engines return them in.

One rule for every endpoint: the sampled token's logprob is pseudo-random but fixed by (prompt
ids, position, token), finite and in [-4, -1e-6] (a continuation's prompt is the generation
prompt it continues: a completion continued after an abort has the numbers it would have had
whole; the weight version does not change them); the alternatives at a position are
pseudo-random ids whose probabilities share what the sampled token leaves, halving by rank.
So the same prompt ids and completion ids give the same numbers on vLLM's chat and completions
endpoints and on SGLang's /generate.

Layouts (read in vLLM 0.34.0 and SGLang 0.5.23):

- vLLM chat (`chat_content`): `logprobs.content`, one {token, logprob, bytes, top_logprobs} per
  completion id (chat_tokens.py's module doc, 6).
- vLLM completions (`completions_logprobs`): entrypoints/openai/completion/serving.py
  `_create_completion_logprobs`: {text_offset, token_logprobs, tokens, top_logprobs}, one item per
  completion id; `top_logprobs[i]` a dict decoded token -> logprob over the position's logprob
  dict cut at `logprobs + 1` items (generate/base/serving.py `completion_top_logprobs_limit`; -1:
  all), that dict holding the sampled token first, then ranks 1..k; `text_offset` starts at 0 and
  adds each previous token's length; `return_tokens_as_token_ids` writes "token_id:<id>" for
  every token. Token texts as in chat (the detokenizer's decoded_token).
- SGLang /generate (`sglang_logprobs`): managers/tokenizer_manager.py `add_logprob_to_meta_info`:
  `output_token_logprobs` [[logprob, token_id, text|None], ...] (text only with
  `return_text_in_logprobs`), `output_token_logprobs_length`, `input_token_logprobs` over the
  prompt from `logprob_start_len` (-1, the default: none; the first prompt token's logprob is
  None), and with `top_logprobs_num` > 0 `input_top_logprobs` / `output_top_logprobs`, per position
  a list of k such triples by rank.
"""

from __future__ import annotations

import hashlib
import math
import struct
from typing import Optional

from rollout.scripted.chat_template import DEFAULT_MODEL, tokenizer


def _unit(seed: bytes, *parts: int) -> float:
    """A fixed pseudo-random number in [0, 1) for (seed, parts)."""
    digest = hashlib.blake2b(seed + struct.pack(f">{len(parts)}q", *parts), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def seed(prompt_ids: list[int]) -> bytes:
    return hashlib.sha256(",".join(map(str, prompt_ids)).encode()).digest()


def token_logprob(prompt_ids: list[int], position: int, token_id: int, *, seed_: Optional[bytes] = None) -> float:
    """The sampled token's logprob: in [-4, -1e-6], fixed by (prompt ids, position, token).
    `seed_`: `seed(prompt_ids)` when the caller has it (it hashes the whole prompt)."""
    return -(1e-6 + 4.0 * _unit(seed_ or seed(prompt_ids), position, token_id) ** 3)


def ranked(seed_: bytes, position: int, token_id: int, logprob: float, k: int, vocab: int) -> list[tuple[int, float]]:
    """The position's logprob dict as vLLM's engine holds it: the sampled token first, then the
    top k of the distribution by rank (the sampled one not repeated)."""
    rest = max(1.0 - math.exp(logprob), 1e-12)
    dist: dict[int, float] = {token_id: logprob}
    for j in range(4 * k + 4):
        if len(dist) > k:
            break
        dist.setdefault(int(_unit(seed_, position, -1 - j) * vocab), max(math.log(rest / 2.0 ** len(dist)), -9999.0))
    order = list(dict.fromkeys([token_id] + sorted(dist, key=lambda t: -dist[t])[:k]))
    return [(t, dist[t]) for t in order]


def decoded(ids: list[int], prev: Optional[int], model: str = DEFAULT_MODEL) -> list[str]:
    """Each id decoded alone, with vLLM's fix for a partial UTF-8 character (chat_tokens.py's
    module doc, 6); `ids` are one position's [sampled, alternatives...], `prev` the previous
    sampled id."""
    tok = tokenizer(model)
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


def _positions(prompt_ids: list[int], ids: list[int], k: int, model: str, start: int = 0):
    """Per completion position from `start` on: [(id, logprob, decoded text), ...], sampled first."""
    seed_, vocab = seed(prompt_ids), tokenizer(model).get_vocab_size()
    for pos, tid in enumerate(ids):
        if pos < start:
            continue
        entries = ranked(seed_, pos, tid, token_logprob(prompt_ids, pos, tid, seed_=seed_), k, vocab)
        texts = decoded([t for t, _ in entries], ids[pos - 1] if pos else None, model)
        yield [(t, lp, s) for (t, lp), s in zip(entries, texts)]


def chat_content(
    prompt_ids: list[int], ids: list[int], *, top_logprobs: int = 0, as_token_ids: bool = False, model: str = DEFAULT_MODEL
) -> list[dict]:
    """vLLM chat's `choices[0].logprobs.content`. top_logprobs -1 (vLLM: the whole vocabulary)
    is answered with 20."""
    k = 20 if top_logprobs == -1 else max(top_logprobs or 0, 0)
    out = []
    for entries in _positions(prompt_ids, ids, k, model):
        entries = entries[: max(k, 1)]
        tokens = [f"token_id:{t}" if as_token_ids else s for t, _, s in entries]
        top = (
            [
                {"token": tok, "logprob": lp, "bytes": list(tok.encode("utf-8", errors="replace"))}
                for (_, lp, _), tok in zip(entries, tokens)
            ]
            if k
            else []
        )
        sampled_text = entries[0][2]
        out.append(
            {
                "token": tokens[0],
                "logprob": entries[0][1],
                "bytes": list(sampled_text.encode("utf-8", errors="replace")),
                "top_logprobs": top,
            }
        )
    return out


def completions_logprobs(
    prompt_ids: list[int],
    ids: list[int],
    *,
    logprobs: int,
    as_token_ids: bool = False,
    model: str = DEFAULT_MODEL,
    start: int = 0,
) -> dict:
    """vLLM completions' `choices[i].logprobs` for `logprobs` = k (module doc); -1 is answered
    with 20 alternatives. `start`: the answer is `ids[start:]`, the rest of a completion whose
    first `start` ids the request's prompt ended with (a continuation)."""
    k = 20 if logprobs == -1 else max(logprobs, 0)
    out: dict[str, list] = {"text_offset": [], "token_logprobs": [], "tokens": [], "top_logprobs": []}
    offset = 0
    for entries in _positions(prompt_ids, ids, k, model, start):
        names = [f"token_id:{t}" if as_token_ids else s for t, _, s in entries]
        out["text_offset"].append(offset)
        out["token_logprobs"].append(entries[0][1])
        out["tokens"].append(names[0])
        out["top_logprobs"].append({name: lp for name, (_, lp, _) in list(zip(names, entries))[: k + 1]})
        offset += len(names[0])
    return out


def sglang_logprobs(
    prompt_ids: list[int],
    ids: list[int],
    *,
    logprob_start_len: int = -1,
    top_logprobs_num: int = 0,
    with_text: bool = False,
    model: str = DEFAULT_MODEL,
    start: int = 0,
) -> dict:
    """The logprob keys of SGLang's /generate `meta_info` (module doc); `start` as for
    `completions_logprobs` (the request's prompt is `prompt_ids + ids[:start]`)."""
    k = max(top_logprobs_num or 0, 0)

    def triple(t: int, lp: Optional[float], s: str) -> list:
        return [lp, t, s if with_text else None]

    outputs = list(_positions(prompt_ids, ids, k, model, start))
    prompt_ids = list(prompt_ids) + list(ids[:start])
    meta: dict = {}
    start = logprob_start_len if logprob_start_len is not None and logprob_start_len >= 0 else len(prompt_ids)
    prompt_part = prompt_ids[start:]
    tok = tokenizer(model)
    meta["input_token_logprobs"] = [
        triple(
            t,
            None if start + i == 0 else token_logprob(prompt_ids[: start + i], 0, t),
            tok.decode([t], skip_special_tokens=False),
        )
        for i, t in enumerate(prompt_part)
    ]
    meta["output_token_logprobs"] = [triple(e[0][0], e[0][1], e[0][2]) for e in outputs]
    meta["output_token_logprobs_length"] = len(outputs)
    if k:
        meta["input_top_logprobs"] = [None for _ in prompt_part]
        meta["output_top_logprobs"] = [[triple(t, lp, s) for t, lp, s in sorted(e, key=lambda x: -x[1])[:k]] for e in outputs]
    return meta
