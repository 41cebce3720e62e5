"""Tokenizing the same long texts again and again, cheaply and exactly.

A tokenizer splits its input at added tokens (`<|im_start|>`, `<|im_end|>`, ...) before it
normalizes and pre-tokenizes, so the ids of a text are the ids of the pieces between added
tokens, each encoded alone, with the added tokens' ids between them. Chat prompts repeat their
pieces (a domain's system prompt and tool schemas in every episode, the same tool results in a
GRPO group's samples), so `PieceEncoder` encodes each distinct piece once (a bounded cache per
encoder) with the fast tokenizer's backend.

Exactness is checked, not assumed: the first `checks` texts are also encoded whole and compared;
a tokenizer whose added tokens strip or merge their neighbours would differ, and the encoder then
encodes every text whole from there on.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from typing import Any

log = logging.getLogger(__name__)


class PieceEncoder:
    """`encode(text)`: the tokenizer's ids of `text` without special tokens added (module doc)."""

    def __init__(self, tokenizer: Any, *, cache_size: int = 4096, checks: int = 8):
        self._whole = lambda text: list(tokenizer.encode(text, add_special_tokens=False))
        backend = getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None
        added = {t.content: i for i, t in tokenizer.added_tokens_decoder.items()} if backend is not None else {}
        self._backend = backend
        self._added = added
        self._split = re.compile("(" + "|".join(map(re.escape, sorted(added, key=len, reverse=True))) + ")") if added else None
        self._cache: OrderedDict[str, list[int]] = OrderedDict()
        self._cache_size = cache_size
        self._checks_left = checks if self._split is not None else 0
        self.piecewise = self._split is not None

    def encode(self, text: str) -> list[int]:
        if not self.piecewise:
            return self._whole(text)
        ids: list[int] = []
        for piece in self._split.split(text):
            if piece in self._added:
                ids.append(self._added[piece])
            elif piece:
                ids += self._piece(piece)
        if self._checks_left:
            self._checks_left -= 1
            whole = self._whole(text)
            if whole != ids:
                log.warning("the tokenizer does not encode text piece by piece between added tokens: encoding whole texts")
                self.piecewise = False
                return whole
        return ids

    def _piece(self, piece: str) -> list[int]:
        ids = self._cache.get(piece)
        if ids is None:
            ids = self._backend.encode(piece, add_special_tokens=False).ids
            self._cache[piece] = ids
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(piece)
        return list(ids)
