"""Copy-on-write domain databases: an episode pays only for the records it touches.

A tau2 domain database is a pydantic model whose big fields are dicts of records
(airline: 300 flights, 500 users, 2000 reservations; retail: products, users, orders).
`cow_copy(template)` returns a database of the same class whose dict fields are
`CowDict`s: they start out sharing the template's record objects and deep-copy a record
the first time it is taken by key (`db.table[key]`, `.get`, `.pop`, `.setdefault`), so an
episode costs microseconds instead of a 150 ms deep copy. Other fields are deep-copied.

Contract: records reached by iterating a table (`.values()`, `.items()`) may be the
template's own and are read-only. tau2's tools honour it: they iterate only to search
and mutate through `db.table[key]` (tests check the templates stay unchanged after every
gold and no-op episode of every domain).

`fast_db_hash(db, template_json)` computes exactly tau2's DB hash
(`sha256(json.dumps(db.model_dump(), sort_keys=True, default=str))`) by reusing the
template's per-record JSON for untouched records. Tests check both against tau2.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator
from typing import Any

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
            value = value.model_copy(deep=True) if isinstance(value, BaseModel) else copy.deepcopy(value)
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


def _record_dicts(model: BaseModel) -> dict[str, dict]:
    """The fields of `model` that are dicts of pydantic records."""
    out = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, dict) and value and all(isinstance(v, BaseModel) for v in value.values()):
            out[name] = value
    return out


def cow_copy(template: BaseModel) -> BaseModel:
    """A database equal to `template`, sharing its records copy-on-write."""
    fields: dict[str, Any] = {}
    record_dicts = _record_dicts(template)
    for name in type(template).model_fields:
        value = getattr(template, name)
        fields[name] = CowDict(value) if name in record_dicts else copy.deepcopy(value)
    return type(template).model_construct(**fields)


def template_json(template: BaseModel) -> dict[str, dict[str, str]]:
    """Per-record JSON of the template's record dicts, as tau2's hash serializes them."""
    return {name: {k: _record_json(v) for k, v in records.items()} for name, records in _record_dicts(template).items()}


def _record_json(record: BaseModel) -> str:
    return json.dumps(record.model_dump(), sort_keys=True, default=str)


def fast_db_hash(db: BaseModel, cached: dict[str, dict[str, str]]) -> str:
    """tau2's hash of `db` (see module doc); falls back to the full dump for other databases."""
    parts = []
    for name in sorted(type(db).model_fields):
        value = getattr(db, name)
        if isinstance(value, CowDict) and name in cached:
            records = cached[name]
            body = ", ".join(
                f"{json.dumps(k)}: {_record_json(dict.__getitem__(value, k)) if k in value.fresh else records[k]}"
                for k in sorted(dict.keys(value))
            )
            parts.append(f"{json.dumps(name)}: {{{body}}}")
        else:
            parts.append(f"{json.dumps(name)}: {json.dumps(db.model_dump(include={name})[name], sort_keys=True, default=str)}")
    return hashlib.sha256(("{" + ", ".join(parts) + "}").encode()).hexdigest()
