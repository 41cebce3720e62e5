"""The engines' token interfaces, as the scripted model answers them: vLLM's `POST /v1/completions`
with a token-id prompt and SGLang's `POST /generate` with `input_ids`. Nothing here knows about
HTTP; server.py decodes the prompt, plays the player on it (prompt_parse.py) and calls these.

Generation (`generate`) is the chat endpoint's (chat_tokens.completion: the same text, the same
ids, the EOS last) cut as the engines cut it, checked per token in this order (vLLM 0.34.0
v1/core/sched/utils.py `check_stop`; SGLang 0.5.23 managers/schedule_batch.py
`update_finish_state`): a stop string completed by the token (the text is cut before it; the
ids keep the token that completed it), then the EOS, then the length cap. So an EOS that is the
cap-th token is a stop; a longer completion is cut to the cap without EOS.

vLLM 0.34.0 (`completions_response`; entrypoints/openai/completion/protocol.py, serving.py
`request_output_to_completion_response`, dumped with every field by api_router.py):
CompletionResponse{id "cmpl-...", object "text_completion", created, model, choices, service_tier,
system_fingerprint, usage, kv_transfer_params, ec_transfer_params, metrics};
CompletionResponseChoice{index, text, logprobs, finish_reason "stop"|"length", stop_reason (the
stop string; None for the EOS), token_ids, prompt_logprobs, prompt_token_ids, routed_experts,
weight_versions}: `prompt_token_ids` and `token_ids` per choice, null unless `return_token_ids`;
`token_ids` end with the EOS, which the text leaves out (skip_special_tokens); logprobs
(logprobs.py `completions_logprobs`) only when `logprobs` is an int; usage {prompt_tokens,
total_tokens, completion_tokens, completion_tokens_details} (prompt_tokens_details left out when
None). `max_tokens` defaults to 16 there, and so here. `temperature`, `seed`, `top_p`: accepted;
the scripted model is deterministic.

SGLang 0.5.23 (`generate_response`; entrypoints/http_server.py `generate_request`,
managers/tokenizer_manager.py, detokenizer_manager.py): {"text", "output_ids", "meta_info"};
`output_ids` are the scheduler's ids, the EOS included (the detokenizer trims the matched stop
token from the text only); `meta_info` {id, finish_reason, prompt_tokens, weight_version,
num_retractions, [logprob keys: logprobs.py `sglang_logprobs`], reasoning_tokens,
completion_tokens, cached_tokens, e2e_latency}; finish_reason {"type": "stop", "matched": <EOS id
or stop string>} | {"type": "length", "length": max_new_tokens} | {"type": "abort", "message"};
`weight_version` is the server's `--weight-version` ("default" unless set; the version of the
last weight swap after one). `sampling_params.max_new_tokens` defaults to 128.

A weight swap (engine_weights.py) ends a generation in flight with finish reason `abort` (vLLM's
choice.finish_reason "abort", stop_reason None) and the ids generated so far (`Generation.aborted`).
A prompt that ends with a partial completion (continuation.py) is answered with the rest of the
completion only (`Generation.partial`); its logprobs are those the whole completion has.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

from rollout.scripted.chat_tokens import completion, decode, encode, eos_id, tokenizer
from rollout.scripted.logprobs import completions_logprobs, sglang_logprobs


def prompts(endpoint: str, body: dict, model: str) -> tuple[list[list[int]], bool]:
    """The request's prompts as token ids, and whether it was a batch; ValueError (HTTP 400)
    names what is wrong."""
    key = "input_ids" if endpoint == "generate" else "prompt"
    raw = body.get(key)
    if raw is None and endpoint == "generate" and isinstance(body.get("text"), str):
        raw = encode(body["text"], model)
    if isinstance(raw, str) and endpoint == "completions":
        raw = encode(raw, model)
    if isinstance(raw, list) and raw and all(isinstance(t, int) and not isinstance(t, bool) for t in raw):
        prompts, batched = [raw], False
    elif isinstance(raw, list) and raw and all(isinstance(p, list) and p and all(isinstance(t, int) for t in p) for p in raw):
        prompts, batched = raw, True
    else:
        raise ValueError(f"'{key}' must be a non-empty list of token ids or a list of such lists")
    vocab = tokenizer(model).get_vocab_size()
    for p in prompts:
        bad = next((t for t in p if not 0 <= t < vocab), None)
        if bad is not None:
            raise ValueError(f"token id {bad} is out of vocabulary (0..{vocab - 1})")
    return prompts, batched


@dataclass(frozen=True)
class Generation:
    """One completion as the engine cut it."""

    ids: list[int]  # the completion ids the engine returns (EOS last when it stopped on it)
    text: str  # the returned text: no EOS, no stop string
    finish: str  # stop | length | abort
    matched: Union[int, str, None]  # the EOS id or the stop string that stopped it; None for length and abort
    partial: list[int] = field(default_factory=list)  # the completion's first ids, ending the prompt (a continuation)

    def aborted(self, generated: int, model: str) -> Generation:
        """This generation cut by a weight swap after `generated` tokens (finish reason abort)."""
        kept = self.ids[:generated]
        return Generation(kept, decode(kept, model=model), "abort", None, self.partial)


def generate(
    message: dict,
    *,
    model: str,
    think: bool,
    drift: Optional[str],
    max_tokens: Optional[int],
    stop: Union[str, list[str], None] = None,
) -> Generation:
    """The model's completion of `message` (the module doc's cuts)."""
    _, ids = completion(message, drift=drift, model=model, think=think)
    eos = eos_id(model)
    stops = [stop] if isinstance(stop, str) else [s for s in stop or [] if s]
    cut: Optional[tuple[int, str, int]] = None  # (ids kept, stop string, its position in the text)
    if stops:
        for n in range(1, len(ids)):
            text = decode(ids[:n], model=model)
            hits = [(text.find(s), s) for s in stops if s in text]
            if hits:
                pos, s = min(hits)
                cut = (n, s, pos)
                break
    if cut is not None and (max_tokens is None or cut[0] <= max_tokens):
        n, s, pos = cut
        return Generation(ids[:n], decode(ids[:n], model=model)[:pos], "stop", s)
    if max_tokens is not None and len(ids) > max_tokens:
        kept = ids[:max_tokens]
        return Generation(kept, decode(kept, model=model), "length", None)
    return Generation(ids, decode(ids[:-1], model=model), "stop", eos)


def completions_response(
    body: dict, prompts: list[list[int]], generations: list[Generation], *, model: str, response_id: str, created: int
) -> dict:
    """vLLM's answer to a /v1/completions request (module doc), one choice per prompt."""
    want_ids = bool(body.get("return_token_ids"))
    choices = []
    for i, (prompt_ids, gen) in enumerate(zip(prompts, generations)):
        logprobs = None
        if body.get("logprobs") is not None:
            logprobs = completions_logprobs(
                prompt_ids[: len(prompt_ids) - len(gen.partial)],
                gen.partial + gen.ids,
                logprobs=int(body["logprobs"]),
                as_token_ids=bool(body.get("return_tokens_as_token_ids")),
                model=model,
                start=len(gen.partial),
            )
        choices.append(
            {
                "index": i,
                "text": gen.text,
                "logprobs": logprobs,
                "finish_reason": gen.finish,
                "stop_reason": gen.matched if isinstance(gen.matched, str) else None,
                "token_ids": list(gen.ids) if want_ids else None,
                "prompt_logprobs": None,
                "prompt_token_ids": list(prompt_ids) if want_ids else None,
                "routed_experts": None,
                "weight_versions": None,
            }
        )
    prompt_tokens = sum(len(p) for p in prompts)
    completion_tokens = sum(len(g.ids) for g in generations)
    return {
        "id": response_id,
        "object": "text_completion",
        "created": created,
        "model": body.get("model") or "scripted",
        "choices": choices,
        "service_tier": None,
        "system_fingerprint": None,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "completion_tokens": completion_tokens,
            "completion_tokens_details": None,
        },
        "kv_transfer_params": None,
        "ec_transfer_params": None,
        "metrics": None,
    }


def generate_response(
    body: dict, prompt_ids: list[int], gen: Generation, *, model: str, rid: str, weight_version: str, seconds: float
) -> dict:
    """SGLang's answer to a /generate request with one prompt (module doc)."""
    sp = body.get("sampling_params") or {}
    if gen.finish == "length":
        finish = {"type": "length", "length": int(sp.get("max_new_tokens", 128))}
    elif gen.finish == "abort":
        finish = {"type": "abort", "message": "Abort before weight update."}
    else:
        finish = {"type": "stop", "matched": gen.matched}
    meta: dict = {
        "id": rid,
        "finish_reason": finish,
        "prompt_tokens": len(prompt_ids),
        "weight_version": weight_version,
        "num_retractions": 0,
    }
    if body.get("return_logprob"):
        meta.update(
            sglang_logprobs(
                prompt_ids[: len(prompt_ids) - len(gen.partial)],
                gen.partial + gen.ids,
                logprob_start_len=body.get("logprob_start_len", -1),
                top_logprobs_num=body.get("top_logprobs_num") or 0,
                with_text=bool(body.get("return_text_in_logprobs")),
                model=model,
                start=len(gen.partial),
            )
        )
    meta.update({"reasoning_tokens": 0, "completion_tokens": len(gen.ids), "cached_tokens": 0, "e2e_latency": seconds})
    return {"text": gen.text, "output_ids": list(gen.ids), "meta_info": meta}
