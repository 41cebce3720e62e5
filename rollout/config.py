"""Typed configuration: dataclass schema, conf/ YAML defaults, presets and overrides.

`load_config(overrides)` merges, in order: the dataclass schema, the package's YAML defaults
(`rollout/defaults/defaults.yaml`, plus `sweep.yaml` for sweeps), any YAML files the user
names (`--config my.yaml`), the selected sampling preset (`sampling=<name>` picks
`rollout/defaults/sampling/<name>.yaml`) and the overrides (a `key=value` list from the
command line, or a nested dict such as AReaL's `workflow_kwargs`). Every key and type is
validated; a mistake raises `InvalidInput` naming the key and the valid choices before any
expensive work starts. `parse_overrides` is the one parser of `key=value` lists.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from rollout.failures import InvalidInput

CONF_DIR = Path(__file__).resolve().parent / "defaults"  # package data: ships in the wheel
SCRIPTED_POLICIES = ("oracle", "noop")
ENV_BACKENDS = ("local", "aenv")
INVALID_TOOL_ARGS = ("end", "feedback")


@dataclass
class EndpointConfig:
    """An OpenAI-compatible chat-completions endpoint."""

    base_url: Optional[str] = None
    api_key: Optional[str] = None
    model: Optional[str] = None
    max_retries: int = 1
    request_timeout_s: float = 300.0
    max_concurrency: int = 0  # requests in flight to this endpoint across a sweep; 0: no cap


@dataclass
class AgentLLMConfig(EndpointConfig):
    scripted: Optional[str] = None


@dataclass
class UserLLMConfig(EndpointConfig):
    max_retries: int = 2
    request_timeout_s: float = 120.0
    temperature: float = 0.0
    extra_body: dict[str, Any] = field(default_factory=dict)


@dataclass
class SamplingConfig:
    """Agent sampling parameters, sent with every agent request."""

    preset: str = "train"
    temperature: Optional[float] = 1.0
    top_p: Optional[float] = None
    max_tokens: Optional[int] = None
    parallel_tool_calls: Optional[bool] = None
    send_seed: bool = True
    extra_body: dict[str, Any] = field(default_factory=dict)


@dataclass
class EpisodeConfig:
    max_steps: int = 200
    max_errors: int = 10
    timeout_s: float = 3600.0
    solo: Optional[bool] = None
    tag_requests: bool = True
    invalid_tool_args: str = "end"
    empty_reply_retries: int = 3


@dataclass
class AenvConfig:
    """The aenv backend: local servers on loopback, or an AEnvironment cluster."""

    name: str = "tau2-rollout-env@0.1.0"
    system_url: Optional[str] = None  # AENV_SYSTEM_URL: cluster mode; null: local servers on 127.0.0.x
    api_key: Optional[str] = None
    ttl: str = "30m"
    startup_timeout_s: float = 180.0
    request_timeout_s: float = 300.0


@dataclass
class EnvConfig:
    backend: str = "local"
    aenv: AenvConfig = field(default_factory=AenvConfig)


@dataclass
class RolloutConfig:
    """Everything one episode needs besides its (domain, task_id, sample)."""

    CONF_FILES: ClassVar[tuple[str, ...]] = ("defaults.yaml",)

    llm: AgentLLMConfig = field(default_factory=AgentLLMConfig)
    user_llm: UserLLMConfig = field(default_factory=UserLLMConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    episode: EpisodeConfig = field(default_factory=EpisodeConfig)
    env: EnvConfig = field(default_factory=EnvConfig)

    def secrets(self) -> list[str]:
        """The configured API keys, for redaction."""
        return [k for k in (self.llm.api_key, self.user_llm.api_key, self.env.aenv.api_key) if k]


def sampling_presets(conf_dir: Path = CONF_DIR) -> list[str]:
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
    on an unknown key, a wrong type, an unknown preset or an unreadable file.
    """
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
            raise InvalidInput(
                f"unknown sampling preset '{preset}'; valid presets: {', '.join(sampling_presets(conf_dir))}"
            )
        layers.append(OmegaConf.create({"sampling": {**OmegaConf.to_container(OmegaConf.load(preset_path)), "preset": preset}}))
    elif preset is not None:
        raise InvalidInput(f"unknown key 'sampling'; valid keys: {', '.join(sorted(f.name for f in fields(schema)))}")
    try:
        check_keys(base, schema)
        check_keys(over, schema)
        cfg = OmegaConf.to_object(OmegaConf.merge(*layers, over))
    except InvalidInput:
        raise
    except (ValidationError, ConfigKeyError, OmegaConfBaseException) as e:
        key = getattr(e, "full_key", None) or ""
        raise InvalidInput(f"invalid value for config key '{key}': {_first_line(e)}") from None
    _validate(cfg)
    return cfg


def _load_yaml(path: Path) -> DictConfig:
    try:
        node = OmegaConf.load(path)
    except FileNotFoundError:
        raise InvalidInput(f"config file not found: {path}") from None
    except (OSError, OmegaConfBaseException, ValueError) as e:
        raise InvalidInput(f"cannot read config file {path}: {_first_line(e)}") from None
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
    try:
        return preset, OmegaConf.from_dotlist(items)
    except Exception as e:  # omegaconf's errors, or yaml's for a value such as `domains=[airline`
        raise InvalidInput(f"cannot parse overrides {items}: {_first_line(e)}") from None


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
            hint = f", did you mean '{close[0]}'" if close else f"; valid keys: {', '.join(sorted(valid))}"
            raise InvalidInput(f"unknown key '{full}'{hint}")
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


def _validate(cfg) -> None:
    checks = []
    llm = getattr(cfg, "llm", None)
    if llm is not None and llm.scripted is not None and llm.scripted not in SCRIPTED_POLICIES:
        checks.append(f"llm.scripted='{llm.scripted}' is not one of {', '.join(SCRIPTED_POLICIES)}")
    env = getattr(cfg, "env", None)
    if env is not None and env.backend not in ENV_BACKENDS:
        checks.append(f"env.backend='{env.backend}' is not one of {', '.join(ENV_BACKENDS)}")
    ep = getattr(cfg, "episode", None)
    if ep is not None:
        if ep.max_steps <= 0:
            checks.append(f"episode.max_steps must be > 0, got {ep.max_steps}")
        if ep.max_errors <= 0:
            checks.append(f"episode.max_errors must be > 0, got {ep.max_errors}")
        if ep.timeout_s <= 0:
            checks.append(f"episode.timeout_s must be > 0, got {ep.timeout_s}")
        if ep.invalid_tool_args not in INVALID_TOOL_ARGS:
            checks.append(f"episode.invalid_tool_args='{ep.invalid_tool_args}' is not one of {', '.join(INVALID_TOOL_ARGS)}")
        if ep.empty_reply_retries < 0:
            checks.append(f"episode.empty_reply_retries must be >= 0, got {ep.empty_reply_retries}")
    if checks:
        raise InvalidInput("; ".join(checks))


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
