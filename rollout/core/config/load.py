"""Loading a config: the YAML layers, sampling presets and overrides, merged over the schema.

`load_config(overrides)` merges, in order: the dataclass schema, the package's YAML defaults
(`rollout/defaults/defaults.yaml`, plus `sweep.yaml` for sweeps), any YAML files the user
names (`--config my.yaml`), the selected sampling preset (`sampling=<name>` picks
`rollout/defaults/sampling/<name>.yaml`) and the overrides (a `key=value` list from the
command line, or a nested dict such as AReaL's `workflow_kwargs`); `merged_config` is that
merge before interpolations are resolved. Every key and type is checked here, every value by
`check.validate`; a mistake raises `InvalidInput` naming the key before any expensive work
starts. `parse_overrides` is the one parser of `key=value` lists.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rollout.core.config.check import validate
from rollout.core.config.schema import RolloutConfig
from rollout.core.failures import InvalidInput, shown

CONF_DIR = Path(__file__).resolve().parents[2] / "defaults"  # rollout/defaults/, package data: ships in the wheel
# The environment variables the defaults read (`${oc.env:NAME,...}`): a config depends on them.
CONFIG_ENV_VARS = tuple(sorted({m for f in CONF_DIR.rglob("*.yaml") for m in re.findall(r"\$\{oc\.env:(\w+)", f.read_text())}))


def sampling_presets(conf_dir: Path = CONF_DIR) -> list[str]:
    """The names of the sampling presets (`sampling=NAME`): the YAML files of `conf_dir`/sampling/."""
    return sorted(p.stem for p in (conf_dir / "sampling").glob("*.yaml"))


def load_config(
    overrides: list[str] | dict[str, Any] | None = None,
    *,
    schema: type = RolloutConfig,
    conf_dir: Path = CONF_DIR,
    files: list[str | Path] = (),
):
    """Build a validated config object of type `schema` (a dataclass).

    `overrides` is either a dotlist (`["llm.model=x", "sampling=eval"]`) or a nested dict.
    `files` are extra YAML files merged after the package defaults (`--config`). The
    sampling preset applies only to schemas with a `sampling` field. Raises `InvalidInput`
    on an unknown key, a wrong type, an unknown preset, an unreadable file or a value
    `check.validate` rejects.
    """
    merged = merged_config(overrides, schema=schema, conf_dir=conf_dir, files=files)
    with _naming_the_key():
        cfg = OmegaConf.to_object(merged)
    validate(cfg)
    return cfg


def merged_config(
    overrides: list[str] | dict[str, Any] | None = None,
    *,
    schema: type = RolloutConfig,
    conf_dir: Path = CONF_DIR,
    files: list[str | Path] = (),
) -> DictConfig:
    """The layers of `load_config` merged over `schema`, keys and types checked, values not yet
    validated and interpolations (`${oc.env:VAR,default}`) not yet resolved. Raises InvalidInput."""
    preset, over = parse_overrides(overrides)
    layers = [_load_yaml(conf_dir / name) for name in schema.CONF_FILES] + [_load_yaml(Path(f)) for f in files]
    base = OmegaConf.merge(*layers) if layers else OmegaConf.create({})
    has_sampling = any(f.name == "sampling" for f in fields(schema))
    base_preset = base.pop("sampling", None) if has_sampling else None
    if isinstance(base_preset, DictConfig):  # a file with a sampling section: its fields override the preset
        over = OmegaConf.merge(OmegaConf.create({"sampling": base_preset}), over)
        preset = preset or base_preset.get("preset", None)
        base_preset = None
    layers = [OmegaConf.structured(schema), base]
    if has_sampling:
        preset = preset or (base_preset if isinstance(base_preset, str) else None) or "train"
        preset_path = conf_dir / "sampling" / f"{preset}.yaml"
        if not preset_path.exists():
            raise InvalidInput(f"unknown sampling preset '{preset}'; valid presets: {', '.join(sampling_presets(conf_dir))}")
        layers.append(OmegaConf.create({"sampling": {**OmegaConf.to_container(OmegaConf.load(preset_path)), "preset": preset}}))
    elif preset is not None:
        raise InvalidInput(f"unknown key 'sampling'; valid keys: {', '.join(sorted(f.name for f in fields(schema)))}")
    with _naming_the_key():
        check_keys(base, schema)
        check_keys(over, schema)
        return OmegaConf.merge(*layers, over)


@contextmanager
def _naming_the_key() -> Iterator[None]:
    """omegaconf's errors as InvalidInput naming the config key (never a value that may be a key)."""
    try:
        yield
    except InvalidInput:
        raise
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or ""
        if key.rsplit(".", 1)[-1].startswith("api_key"):  # never echo what may be a key
            raise InvalidInput(f"invalid value for config key '{key}': {type(e).__name__} (the value is not shown)") from None
        message = _first_line(e)
        if "is not a ListConfig" in message or "Invalid type assigned: str is not a subclass of ListConfig" in message:
            message = f"a list is expected, e.g. {key.rsplit('.', 1)[-1]}=[a,b]"
        elif "is not a DictConfig" in message or "is not a subclass of DictConfig" in message:
            message = f"a mapping is expected, e.g. {key.rsplit('.', 1)[-1]}={{k: v}}"
        raise InvalidInput(f"invalid value for config key '{key}': {message}") from None


def _load_yaml(path: Path) -> DictConfig:
    try:
        node = OmegaConf.load(path)
    except FileNotFoundError:
        raise InvalidInput(f"config file not found: {shown(str(path))}") from None
    except RecursionError:
        raise InvalidInput(f"config file {shown(str(path))} is not valid YAML: an alias refers to itself") from None
    except Exception as e:  # OSError, yaml's scanner/parser/constructor errors, omegaconf's
        raise InvalidInput(f"config file {shown(str(path))} is not valid YAML: {_yaml_error(e)}") from None
    if not isinstance(node, DictConfig):
        raise InvalidInput(f"config file {path} must hold a mapping of keys, got a {type(node).__name__}")
    return node


def to_dict(cfg, redact_secrets: bool = True) -> dict[str, Any]:
    """The config as plain data; API keys replaced by '***' unless `redact_secrets` is False."""
    data = OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)

    def scrub(node):
        if isinstance(node, dict):
            return {k: ("***" if k == "api_key" and v and redact_secrets else scrub(v)) for k, v in node.items()}
        if isinstance(node, list):
            return [scrub(v) for v in node]
        return node

    return scrub(data)


def parse_overrides(overrides) -> tuple[Optional[str], DictConfig]:
    """Parse overrides (a `key=value` list or a nested dict) into (sampling preset name, the rest).

    Raises InvalidInput for an item that is not `key=value` or a value omegaconf cannot parse
    (e.g. `domains=[airline`)."""
    if overrides is None:
        return None, OmegaConf.create({})
    if isinstance(overrides, dict):
        over = OmegaConf.create(overrides)
        sampling = over.get("sampling", None)
        if isinstance(sampling, str):
            over.pop("sampling")
            return sampling, over
        if isinstance(sampling, DictConfig) and sampling.get("preset", None):
            return str(sampling.preset), over
        return None, over
    preset, items = None, []
    for item in overrides:
        if "=" not in item:
            raise InvalidInput(f"override '{item}' is not of the form key=value")
        if item.startswith(("-", "+")):
            raise InvalidInput(f"override '{item}': write plain key=value (no leading '-' or '+')")
        key, value = item.split("=", 1)
        if key.strip() in ("sampling", "sampling.preset"):
            preset = value.strip()
        else:
            items.append(item)
    for item in items:  # one at a time, so an error names the item
        try:
            OmegaConf.from_dotlist([item])
        except Exception as e:  # omegaconf's errors, or yaml's for a value such as `domains=[airline`
            key = item.split("=", 1)[0].strip()
            if key.rsplit(".", 1)[-1].startswith("api_key"):  # never echo what may be a key
                raise InvalidInput(f"cannot parse the value of override '{key}' (the value is not shown)") from None
            raise InvalidInput(f"cannot parse override {shown(item)}: {_first_line(e)}") from None
    return preset, OmegaConf.from_dotlist(items)


def overrides_to_dict(overrides: list[str]) -> dict[str, Any]:
    """`['a.b=1', 'sampling=eval']` -> `{'a': {'b': 1}, 'sampling': 'eval'}` (values parsed by omegaconf)."""
    preset, conf = parse_overrides(overrides)
    out = OmegaConf.to_container(conf)
    if preset:
        out["sampling"] = preset
    return out


def check_keys(node: DictConfig, schema: type, prefix: str = "") -> None:
    """Reject keys the schema does not have, with a did-you-mean suggestion."""
    valid = {f.name: f for f in fields(schema)}
    for key in node.keys():
        full = f"{prefix}{key}"
        if key not in valid:
            close = difflib.get_close_matches(str(key), list(valid), n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            raise InvalidInput(
                f"unknown key {shown(full)}{hint}; valid keys{' under ' + prefix[:-1] if prefix else ''}: "
                f"{', '.join(sorted(valid))}"
            )
        sub_type = valid[key].type
        sub_schema = _dataclass_of(sub_type, schema)
        value = node.get(key)
        if sub_schema is not None and isinstance(value, DictConfig):
            check_keys(value, sub_schema, prefix=f"{full}.")


def _dataclass_of(type_hint, owner):
    if isinstance(type_hint, str):  # `from __future__ import annotations`
        import typing

        hints = typing.get_type_hints(owner)
        for f in fields(owner):
            if f.type == type_hint:
                type_hint = hints[f.name]
                break
    return type_hint if is_dataclass(type_hint) else None


def _yaml_error(e: Exception) -> str:
    """yaml's problem and where (line, column), in one line."""
    problem, mark = getattr(e, "problem", None), getattr(e, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return _first_line(e)


def _first_line(e: Exception, limit: int = 300) -> str:
    line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return line if len(line) <= limit else f"{line[:limit]}... ({len(line)} characters)"
