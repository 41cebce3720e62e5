"""Token prompts that end inside the assistant's turn: a generation prompt + a partial completion.

A client whose call the engine aborted (a weight swap) sends the prompt again with the tokens
generated so far appended, and the engine generates the rest, as vLLM and SGLang do for any
token prompt. The scripted model answers such a prompt exactly: `split_partial` finds the
generation prompt (the last `<|im_start|>assistant\\n`, with Qwen3's empty think block when
thinking is off) and the ids after it; the server plays the conversation up to the generation
prompt, and `continue_generation` checks that the partial ids are the first ids of the reply it
gives there and returns the rest, cut as the engine cuts it (max_tokens counts the rest only).

A prompt whose tail after the generation prompt is not such a prefix is refused with HTTP 400
naming the first id that differs: the scripted model only knows its own replies (a real model
would carry on from any text).
"""

from __future__ import annotations

from typing import Optional, Union

from rollout.scripted.chat_template import decode, tokenizer
from rollout.scripted.prompt_parse import EMPTY_THINK
from rollout.scripted.token_endpoints import Generation, generate

GENERATION_PROMPT = "<|im_start|>assistant\n"
_LONGEST_GENERATION_PROMPT = 16  # ids: "<|im_start|>assistant\n" + an empty think block, with room


class NotAContinuation(ValueError):
    """The prompt's tail is not a prefix of the model's own reply (the message says where)."""


def split_partial(prompt_ids: list[int], model: str) -> tuple[list[int], list[int]]:
    """(the prompt up to and with its generation prompt, the ids after it). The second is empty
    for a prompt that ends with its generation prompt, or when none is found (the prompt is then
    read as it is, and refused there if it is not a render)."""
    start_id = tokenizer(model).token_to_id("<|im_start|>")
    starts = [i for i, t in enumerate(prompt_ids) if t == start_id]
    if not starts:
        return list(prompt_ids), []
    i = starts[-1]
    end: Optional[int] = None
    for j in range(i + 1, min(len(prompt_ids), i + _LONGEST_GENERATION_PROMPT) + 1):
        if decode(prompt_ids[i:j], skip_special_tokens=False, model=model) in (
            GENERATION_PROMPT,
            GENERATION_PROMPT + EMPTY_THINK,
        ):
            end = j  # the longest: thinking off puts the empty think block in the generation prompt
    if end is None:
        return list(prompt_ids), []
    return list(prompt_ids[:end]), list(prompt_ids[end:])


def continue_generation(
    message: dict,
    partial: list[int],
    *,
    model: str,
    think: bool,
    drift: Optional[str],
    max_tokens: Optional[int],
    stop: Union[str, list[str], None] = None,
) -> Generation:
    """The rest of the model's reply `message` after its first ids `partial`, cut as the engine
    cuts the whole (token_endpoints.generate) with `max_tokens` more tokens at most. Raises
    NotAContinuation when `partial` is not how that reply begins."""
    cap = None if max_tokens is None else len(partial) + max_tokens
    whole = generate(message, model=model, think=think, drift=drift, max_tokens=cap, stop=stop)
    differs = next((k for k, (a, b) in enumerate(zip(partial, whole.ids)) if a != b), None)
    if differs is None and len(partial) > len(whole.ids):
        differs = len(whole.ids)
    if differs is not None:
        raise NotAContinuation(
            f"the prompt ends inside an assistant turn whose {len(partial)} ids are not how this model's reply to "
            f"the conversation begins (id {differs} differs): only its own partial completion is continued"
        )
    rest = whole.ids[len(partial) :]
    text = whole.text[len(decode(partial, model=model)) :]
    return Generation(rest, text, whole.finish, whole.matched, list(partial))
