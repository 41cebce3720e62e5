"""The configuration reference, generated from the schema and the packaged YAML defaults.

    python -m rollout.core.config.reference [MODULE:CLASS] [--write FILE]

prints markdown: for the schema (default `rollout.core.config:RolloutConfig`) and, first, the
config schemas it extends, one table per section (key, type, default, valid: the choices or bounds, help). A
default is what a user gets with no overrides: the YAML value where the packaged YAML sets
one (`${oc.env:VAR,default}` shown as "env VAR, else default"), else the schema's; where a
later schema's YAML changes a default, the cell says so. `--write FILE` replaces the part of
FILE between `START` and `END` instead (docs/config.md: `rollout.sweep.config:SweepConfig`).
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import typing
from collections.abc import Sequence
from dataclasses import Field, is_dataclass
from pathlib import Path
from typing import Any, Optional

from omegaconf import OmegaConf

from rollout.core.config.keys import KEY_SOURCE_FIELDS, KeySource
from rollout.core.config.load import CONF_DIR, merged_config, sampling_presets
from rollout.core.config.schema import is_optional, walk
from rollout.core.failures import InvalidInput
from rollout.core.markers import between_markers, markers, replace_between_markers

MARKERS = "config-reference"  # docs/config.md: <!-- config-reference:start --> ... :end -->
START, END = markers(MARKERS)
DEFAULT_SCHEMA = "rollout.core.config:RolloutConfig"
_ENV_DEFAULT = re.compile(r"\$\{oc\.env:(\w+)(?:,(.*))?\}")
_PACKAGE_ROOT = CONF_DIR.parents[1]


def reference(schema: type) -> str:
    """The markdown reference of `schema` and of the dataclass schemas it extends, base first."""
    chain = [c for c in reversed(schema.__mro__) if is_dataclass(c) and hasattr(c, "CONF_FILES")]
    defaults = {c: _defaults(c) for c in chain}
    out, done = [], set()
    for cls in chain:
        out.append(_schema_heading(cls))
        by_key = {key: (f, type_hint) for key, f, type_hint in walk(cls)}
        for section, keys in _sections(cls):
            keys = [k for k in keys if k not in done]
            if not keys:
                continue
            done.update(keys)
            out.append(_section_heading(section, *by_key[section]) if section else "### top-level keys\n")
            out.append(_table(cls, [(key, *by_key[key]) for key in keys], chain, defaults))
    return "\n".join(out)


def _sections(schema: type) -> list[tuple[Optional[str], list[str]]]:
    """(section key, or None for the top level; the keys of its own fields), in declaration order."""
    sections: dict[Optional[str], list[str]] = {None: []}
    for key, _, type_hint in walk(schema):
        parent = key.rpartition(".")[0] or None
        if is_dataclass(type_hint):
            sections[key] = []
        else:
            sections[parent].append(key)
    return list(sections.items())


def _defaults(schema: type) -> dict[str, Any]:
    """Every key's default under `schema`'s YAML layers, interpolations unresolved."""
    data = OmegaConf.to_container(merged_config(schema=schema), resolve=False)
    out = {}
    for key, _, type_hint in walk(schema):
        if not is_dataclass(type_hint):
            value = data
            for part in key.split("."):
                value = value[part]
            out[key] = value
    return out


def _schema_heading(schema: type) -> str:
    files = ", ".join(f"`{(CONF_DIR / name).relative_to(_PACKAGE_ROOT)}`" for name in schema.CONF_FILES)
    doc = (schema.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
    return f"## `{schema.__name__}`\n\n{doc} Defaults: {files or 'the schema'}.\n"


def _section_heading(section: str, f: Field, section_type: type) -> str:
    lines = [f"### `{section}`", _sentence(f.metadata.get("help", ""))]
    if issubclass(section_type, KeySource):
        sources = ", ".join(f"`{section}.{name}`" for name in KEY_SOURCE_FIELDS)
        lines.append(f"The API key: one of {sources}; with none of them, `${section_type.KEY_ENV}` if it is set.")
    if section == "sampling":  # the one section `load_config` fills from a preset
        presets = ", ".join(f"`{p}`" for p in sampling_presets())
        lines.append(
            f"`sampling=NAME` selects a preset ({presets}: `{(CONF_DIR / 'sampling').relative_to(_PACKAGE_ROOT)}/"
            f"NAME.yaml`), whose values are the defaults below; `sampling.KEY=value` overrides one."
        )
    return "\n\n".join(lines) + "\n"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _table(schema: type, rows_of: list[tuple[str, Field, Any]], chain: list[type], defaults: dict[type, dict[str, Any]]) -> str:
    """The table of `rows_of` (key, field, type) under `schema`; a later schema of `chain` whose
    YAML changes a default is named in the default's cell."""
    rows = ["| key | type | default | valid | help |", "|---|---|---|---|---|"]
    for key, f, type_hint in rows_of:
        value = defaults[schema][key]
        later = [c for c in chain[chain.index(schema) + 1 :] if defaults[c].get(key, value) != value]
        default = _shown_default(value) + "".join(f" (`{c.__name__}`: {_shown_default(defaults[c][key])})" for c in later)
        choices = ", ".join(f"`{c}`" for c in f.metadata.get("choices", ()))
        if "bounds" in f.metadata:
            choices = f.metadata["bounds"].text()
        if choices and is_optional(type_hint):
            choices += ", `null`"
        rows.append(f"| `{key}` | {_type_name(type_hint)} | {default} | {choices} | {_cell(f.metadata.get('help', ''))} |")
    return "\n".join(rows) + "\n"


def _type_name(type_hint: Any) -> str:
    args = [a for a in typing.get_args(type_hint) if a is not type(None)]
    if is_optional(type_hint):
        return f"{_type_name(args[0])} or null"
    origin = typing.get_origin(type_hint)
    if origin is list:
        return f"list[{_type_name(args[0])}]"
    if origin is dict:
        return "mapping"
    return getattr(type_hint, "__name__", str(type_hint))


def _shown_default(value: Any) -> str:
    if isinstance(value, str):
        env = _ENV_DEFAULT.fullmatch(value)
        if env:
            return f"env `{env[1]}`, else `{env[2]}`" if env[2] is not None else f"env `{env[1]}`"
    return f"`{_yaml(value)}`"


def _yaml(value: Any) -> str:
    """A value as it is written in YAML flow style."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml(v)}" for k, v in value.items()) + "}"
    return str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def schema_named(name: str) -> type:
    """The dataclass `module:Class` names. Raises InvalidInput."""
    module, _, attr = name.partition(":")
    try:
        schema = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError):
        raise InvalidInput(f"no schema {name!r}: give MODULE:CLASS, e.g. {DEFAULT_SCHEMA}") from None
    if not (isinstance(schema, type) and is_dataclass(schema) and hasattr(schema, "CONF_FILES")):
        raise InvalidInput(f"{name} is not a config schema (a dataclass with CONF_FILES)")
    return schema


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m rollout.core.config.reference", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("schema", nargs="?", default=DEFAULT_SCHEMA, metavar="MODULE:CLASS")
    p.add_argument("--write", metavar="FILE", help="rewrite the part of FILE between the markers")
    a = p.parse_args(argv)
    try:
        body = reference(schema_named(a.schema))
        if a.write:
            doc = Path(a.write)
            text = doc.read_text()
            if between_markers(text, MARKERS) is None:
                raise InvalidInput(f"{doc} has no {START} ... {END} markers")
            doc.write_text(replace_between_markers(text, MARKERS, body))
            print(f"wrote the reference of {a.schema} to {doc}")
        else:
            sys.stdout.write(body)
    except InvalidInput as e:
        print(f"error: {e.failure.message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
