"""Copy-on-write domain databases: an episode pays only for the records it touches.

A tau2 domain database is a pydantic model whose big fields are dicts of records
(airline: 300 flights, 500 users, 2000 reservations; retail: products, users, orders).
`cow_copy(template)` returns a database of the same class whose dict fields are
`CowDict`s: they start out sharing the template's record objects and copy a record
(`record_copy`) the first time it is taken by key (`db.table[key]`, `.get`, `.pop`, `.setdefault`), so an
episode costs microseconds instead of a 150 ms deep copy. Other fields are deep-copied.

Contract: records reached by iterating a table (`.values()`, `.items()`) may be the
template's own and are read-only. tau2's tools honour it: they iterate only to search
and mutate through `db.table[key]` (tests check the templates stay unchanged after every
gold and no-op episode of every domain).

`fast_db_hash(db, template_json(template))` computes exactly tau2's DB hash
(`sha256(json.dumps(db.model_dump(), sort_keys=True, default=str))`): the template's
tables are serialised once, and a copy's hash streams the template's bytes between the
records the episode changed, added or removed, serialising only those (a record taken by key
but left as it was counts as unchanged). The template's own hash state is saved along its
tables, so a copy's hash starts at its first changed record, and a copy with no change has the
template's hash. Tests check it against tau2's hash after every kind of change.
"""

from __future__ import annotations

import bisect
import copy
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Union

from pydantic import BaseModel

_MISSING = object()


class CowDict(dict):
    """A dict of records shared with a template until accessed (see module doc)."""

    def __init__(self, template: dict):
        super().__init__(template)  # shallow: the same record objects as the template
        self.fresh: set = set()  # keys whose record is this dict's own copy (or new)

    def _own(self, key):
        value = dict.__getitem__(self, key)
        if key not in self.fresh:
            value = record_copy(value) if isinstance(value, BaseModel) else copy.deepcopy(value)
            dict.__setitem__(self, key, value)
            self.fresh.add(key)
        return value

    def __getitem__(self, key):
        return self._own(key)

    def get(self, key, default=None):
        return self._own(key) if dict.__contains__(self, key) else default

    def __setitem__(self, key, value):
        dict.__setitem__(self, key, value)
        self.fresh.add(key)

    def setdefault(self, key, default=None):
        if dict.__contains__(self, key):
            return self._own(key)
        self[key] = default
        return default

    def pop(self, key, default=_MISSING):
        if dict.__contains__(self, key):
            value = self._own(key)
            dict.__delitem__(self, key)
            self.fresh.discard(key)
            return value
        if default is _MISSING:
            raise KeyError(key)
        return default

    def __delitem__(self, key):
        dict.__delitem__(self, key)
        self.fresh.discard(key)

    def popitem(self):
        key = next(reversed(list(dict.keys(self))))
        return key, self.pop(key)

    def update(self, other=(), **kwargs):
        pairs = other.items() if hasattr(other, "items") else other
        for key, value in [*pairs, *kwargs.items()]:
            self[key] = value

    def copy(self):
        return {k: self._own(k) for k in list(dict.keys(self))}

    def __iter__(self) -> Iterator:
        return iter(list(dict.keys(self)))

    def __deepcopy__(self, memo):
        return {k: copy.deepcopy(self._own(k), memo) for k in list(dict.keys(self))}

    def __reduce__(self):
        return dict, (self.copy(),)


def record_copy(record: BaseModel) -> BaseModel:
    """A deep copy of a record, equal to `model_copy(deep=True)` and 2-4x faster (the record
    is re-validated from its own dump, which shares nothing with it; tests check equality on
    every record of every domain)."""
    return type(record).model_validate(record.model_dump())


def record_fields(model: BaseModel) -> frozenset[str]:
    """Names of the fields of `model` that are non-empty dicts of pydantic records."""
    out = set()
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, dict) and value and all(isinstance(v, BaseModel) for v in value.values()):
            out.add(name)
    return frozenset(out)


def cow_copy(template: BaseModel, records: frozenset[str] | None = None) -> BaseModel:
    """A database equal to `template`, sharing its records copy-on-write. `records` are its
    record-dict fields (`record_fields(template)`, computed here when not given)."""
    records = record_fields(template) if records is None else records
    fields: dict[str, Any] = {}
    for name in type(template).model_fields:
        value = getattr(template, name)
        fields[name] = CowDict(value) if name in records else copy.deepcopy(value)
    return type(template).model_construct(**fields)


@dataclass(frozen=True)
class TableJson:
    """One record table of a template as tau2's hash serialises it: the entries
    `"key": {record json}` in key order, joined by ", " (`body`); entry i is
    body[bounds[i] : bounds[i + 1] - 2]."""

    keys: list[str]
    index: dict[str, int]
    body: bytes
    bounds: list[int]

    def span(self, a: int, b: int) -> memoryview:
        """Entries a..b-1 (a < b) with their inner separators."""
        return memoryview(self.body)[self.bounds[a] : self.bounds[b] - 2]

    def entry(self, i: int) -> memoryview:
        return self.span(i, i + 1)

    def end(self, i: int) -> int:
        """Offset in `body` where entries 0..i-1 end (0 for none)."""
        return self.bounds[i] - 2 if i else 0


Piece = Union[bytes, tuple[TableJson, int, int]]  # literal bytes, or the template's entries a..b-1

CHECKPOINT_BYTES = 1 << 16  # a saved hash state at least every this many bytes of a table


class TemplateJson:
    """A template database's record tables serialised once (`tables`), its own serialisation
    as pieces (`stream`) and hash, the hash's state saved along the tables (`states`: every
    CHECKPOINT_BYTES, at entry boundaries, so a copy's hash resumes at its first change), and
    a small memo of hashes already computed, keyed by a digest of everything that differs from
    the template (the evaluator hashes its gold and predicted databases, which usually end up
    equal). Thread-safe."""

    MEMO_SIZE = 256

    def __init__(self, tables: dict[str, TableJson], stream: list[Piece] = ()):
        self.tables = tables
        self.record_fields = frozenset(tables)  # the fields `cow_copy` shares copy-on-write
        self.stream = list(stream)
        self.states: dict[int, tuple[list[int], list[Any]]] = {}  # id(table) -> (entry indices, states there)
        h = hashlib.sha256()
        for piece in self.stream:
            if isinstance(piece, bytes):
                h.update(piece)
                continue
            t, indices, states = piece[0], [0], [h.copy()]
            for i in range(1, len(t.keys) + 1):
                if t.end(i) - t.end(indices[-1]) >= CHECKPOINT_BYTES or i == len(t.keys):
                    h.update(memoryview(t.body)[t.end(indices[-1]) : t.end(i)])
                    indices.append(i)
                    states.append(h.copy())
            self.states[id(t)] = (indices, states)
        self.digest = h.hexdigest()
        self._memo: OrderedDict[bytes, str] = OrderedDict()
        self._lock = threading.Lock()

    def resumed(self, t: TableJson, x: int):
        """A hash that has taken the template's serialisation up to the end of entry x-1 of `t`
        (up to the table's opening brace for x = 0)."""
        indices, states = self.states[id(t)]
        k = bisect.bisect_right(indices, x) - 1
        h = states[k].copy()
        if indices[k] < x:
            h.update(memoryview(t.body)[t.end(indices[k]) : t.end(x)])
        return h

    def lookup(self, key: bytes) -> str | None:
        with self._lock:
            return self._memo.get(key)

    def remember(self, key: bytes, digest: str) -> None:
        with self._lock:
            self._memo[key] = digest
            while len(self._memo) > self.MEMO_SIZE:
                self._memo.popitem(last=False)


def template_json(template: BaseModel) -> TemplateJson:
    """The template's record tables, serialised once for `fast_db_hash`."""
    out = {}
    for name in record_fields(template):
        records = getattr(template, name)
        keys = sorted(records)
        entries = [_entry(k, records[k]) for k in keys]
        bounds = [0]
        for e in entries:
            bounds.append(bounds[-1] + len(e) + 2)
        out[name] = TableJson(keys, {k: i for i, k in enumerate(keys)}, b", ".join(entries), bounds)
    return TemplateJson(out, _pieces(cow_copy(template, frozenset(out)), out))


def _entry(key, record: BaseModel) -> bytes:
    return f"{json.dumps(key)}: {json.dumps(record.model_dump(), sort_keys=True, default=str)}".encode()


def fast_db_hash(db: BaseModel, template: TemplateJson) -> str:
    """tau2's hash of `db` (see module doc). Fields that are not copy-on-write tables of the
    template are serialised in full, as tau2 does."""
    pieces = _pieces(db, template.tables)
    if not template.tables:  # nothing shared with the template: the pieces are the whole text
        return hashlib.sha256(b"".join(pieces)).hexdigest()  # type: ignore[arg-type]
    key = _describe(pieces)
    digest = template.lookup(key)
    if digest is None:
        digest = _hash(pieces, template)
        template.remember(key, digest)
    return digest


def _pieces(db: BaseModel, tables: dict[str, TableJson]) -> list[Piece]:
    """`db` serialised as tau2's hash does: literal bytes, and spans of the template's tables
    where the copy's records are still the template's."""
    pieces: list[Piece] = [b"{"]
    for i, name in enumerate(sorted(type(db).model_fields)):
        pieces.append(f"{', ' if i else ''}{json.dumps(name)}: ".encode())
        value = getattr(db, name)
        if isinstance(value, CowDict) and name in tables:
            pieces.append(b"{")
            _table_pieces(pieces, value, tables[name])
            pieces.append(b"}")
        else:
            pieces.append(json.dumps(db.model_dump(include={name})[name], sort_keys=True, default=str).encode())
    pieces.append(b"}")
    return pieces


def _hash(pieces: list[Piece], template: TemplateJson) -> str:
    """The sha256 of the pieces, resumed from the template's saved state at the first byte
    where they differ from the template's own serialisation."""
    stream = template.stream
    for i, (piece, ours) in enumerate(zip(pieces, stream)):
        if piece is ours or piece == ours:
            continue
        if isinstance(ours, tuple):  # the first table that differs: resume at its first change
            if isinstance(piece, tuple) and piece[0] is ours[0] and piece[1] == 0:
                h, rest = template.resumed(ours[0], piece[2]), pieces[i + 1 :]
            else:
                h, rest = template.resumed(ours[0], 0), pieces[i:]
        else:  # a field outside the tables differs: from the start
            h, rest = hashlib.sha256(), pieces
        for p in rest:
            h.update(p if isinstance(p, bytes) else p[0].span(p[1], p[2]))
        return h.hexdigest()
    return template.digest


def _describe(pieces: list[Piece]) -> bytes:
    """A digest that determines the serialisation: literals by content, spans by position."""
    h = hashlib.sha256()
    for piece in pieces:
        if isinstance(piece, bytes):
            h.update(b"L%d:" % len(piece) + piece)
        else:
            h.update(b"S%d:%d:%d;" % (id(piece[0]), piece[1], piece[2]))
    return h.digest()


def _table_pieces(pieces: list[Piece], table: CowDict, t: TableJson) -> None:
    """Append `table`'s serialisation: template entries between the records that differ from
    the template's (a record taken by key but left as it was serialises to the template's
    bytes and stays inside the span)."""
    added = [k for k in table.fresh if k not in t.index]
    removed = [k for k in t.keys if not dict.__contains__(table, k)] if len(table) != len(t.keys) + len(added) else []
    parts: list[Piece] = []
    pos = 0  # next template entry not yet emitted
    for key in sorted({*table.fresh, *removed}):
        j = t.index.get(key)
        present = dict.__contains__(table, key)
        entry = _entry(key, dict.__getitem__(table, key)) if present else None
        if j is not None and entry is not None and entry == t.entry(j):
            continue  # unchanged: the template's entry stays in the span
        stop, pos_after = (j, j + 1) if j is not None else (bisect.bisect_left(t.keys, key),) * 2
        if pos < stop:
            parts.append((t, pos, stop))
        if entry is not None:
            parts.append(entry)
        pos = pos_after
    if pos < len(t.keys):
        parts.append((t, pos, len(t.keys)))
    for i, part in enumerate(parts):
        if i:
            pieces.append(b", ")
        pieces.append(part)
