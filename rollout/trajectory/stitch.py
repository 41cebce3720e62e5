"""The stitched view: an episode's policy calls as contiguous token sequences with a loss mask.

A trainer that trains on one sequence per episode (verl, slime, OpenRLHF) needs each call's
prompt to extend the previous call's prompt + completion token for token: the tokens between
two completions (tool results, the user's reply, the template's markers) are then the prompt's
new tail, masked out, and the completions are the trainable tokens with their sampled
logprobs. Where a prompt does not extend what came before (a chat template that is not
append-only, a BPE merge across the boundary, a tool call re-serialised differently from how
the model wrote it), stitching would train on a sequence the model never saw: the sequence is
split there instead and a new segment starts with that call's full prompt, and the split is
counted. Calls whose tokens were not captured, and empty replies that were regenerated (they
never reached the conversation), are not stitched; the former also split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from rollout.core.tokens import TurnRecord


@dataclass
class Segment:
    """A contiguous token sequence: `prompt_ids`, then `response_ids` where `response_mask` is 1
    on the policy's own tokens (their `response_logprobs` as sampled) and 0 on the tokens
    between completions (logprob 0.0). `turns` are the per-turn view's indices it covers."""

    prompt_ids: list[int]
    response_ids: list[int] = field(default_factory=list)
    response_mask: list[int] = field(default_factory=list)
    response_logprobs: list[float] = field(default_factory=list)
    turns: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {name: list(getattr(self, name)) for name in self.__dataclass_fields__}

    def _extend(self, gap: list[int], turn: TurnRecord, index: int) -> None:
        self.response_ids += gap + turn.completion_token_ids
        self.response_mask += [0] * len(gap) + [1] * len(turn.completion_token_ids)
        self.response_logprobs += [0.0] * len(gap) + list(turn.completion_logprobs)
        self.turns.append(index)


@dataclass
class Drift:
    """How the boundaries between stitched calls went: `clean` (the prompt extended what came
    before) or `split` (it did not, or a call's tokens are missing)."""

    clean: int = 0
    split: int = 0

    @property
    def boundaries(self) -> int:
        return self.clean + self.split

    def to_dict(self) -> dict:
        return {"clean": self.clean, "split": self.split}


def stitch(turns: list[Optional[TurnRecord]]) -> tuple[list[Segment], Drift]:
    """The stitched view of an episode's calls, in order (None: a call whose tokens are absent)."""
    segments: list[Segment] = []
    drift = Drift()
    current: Optional[Segment] = None
    seen: list[int] = []  # current's prompt + response, for the prefix test
    for index, turn in enumerate(turns):
        if turn is not None and turn.message_index is None:
            continue  # a regenerated empty reply: not part of the conversation
        if turn is None or turn.prompt_token_ids is None:
            if current is not None:
                drift.split += 1
            current, seen = None, []
            continue
        prompt = turn.prompt_token_ids
        if current is not None and len(prompt) >= len(seen) and prompt[: len(seen)] == seen:
            drift.clean += 1
            current._extend(prompt[len(seen) :], turn, index)
        else:
            if current is not None:
                drift.split += 1
            current = Segment(prompt_ids=list(prompt))
            current._extend([], turn, index)
            segments.append(current)
        seen = prompt + turn.completion_token_ids
    return segments, drift
