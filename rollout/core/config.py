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
import os
import re
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from rollout.core.failures import InvalidInput
from rollout.core.tokens import CAPTURE_MODES

CONF_DIR = Path(__file__).resolve().parents[1] / "defaults"  # rollout/defaults/, package data: ships in the wheel
# The environment variables the defaults read (`${oc.env:NAME,...}`): a config depends on them.
CONFIG_ENV_VARS = tuple(sorted({m for f in CONF_DIR.rglob("*.yaml")
                                for m in re.findall(r"\$\{oc\.env:(\w+)", f.read_text())}))
SCRIPTED_POLICIES = ("oracle", "noop")
ENV_BACKENDS = ("local", "aenv")
INVALID_TOOL_ARGS = ("end", "feedback")


class _KeySource:
    """Where an API key comes from: `api_key` (a literal), `api_key_file` (a file holding
    it) or `api_key_env` (the name of an environment variable). The file and the variable
    are read by the process that makes the requests, when it makes them, so the key itself
    never travels in a config, a command line or a Ray job record. With none of the three,
    the standard variable `KEY_ENV` is read if it is set."""

    KEY_ENV: ClassVar[str] = "OPENAI_API_KEY"


@dataclass
class EndpointConfig(_KeySource):
    """An OpenAI-compatible chat-completions endpoint (API key: see `api_key_of`)."""

    base_url: Optional[str] = None
    api_key: Optional[str] = None  # a literal key; refused when the config goes to a Ray cluster
    api_key_env: Optional[str] = None  # name of an environment variable holding the key
    api_key_file: Optional[str] = None  # path of a file holding the key
    model: Optional[str] = None
    max_retries: int = 1
    request_timeout_s: float = 300.0
    max_concurrency: int = 0  # requests in flight to this endpoint across a sweep; 0: no cap


@dataclass
class AgentLLMConfig(EndpointConfig):
    scripted: Optional[str] = None
    caller_http_client: bool = False  # AReaL's http_client: false: requests to its base_url over this project's client
    capture: Optional[str] = None  # token capture for training: token_ids | tokens_as_ids (rollout/core/tokens.py); null: off


@dataclass
class UserLLMConfig(EndpointConfig):
    KEY_ENV: ClassVar[str] = "TAU2_USER_LLM_API_KEY"
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
class AenvConfig(_KeySource):
    """The aenv backend: local servers on loopback, or an AEnvironment cluster."""

    KEY_ENV: ClassVar[str] = "AENV_API_KEY"

    name: str = "tau2-rollout-env@0.1.0"
    system_url: Optional[str] = None  # AENV_SYSTEM_URL: cluster mode; null: local servers on 127.0.0.x
    api_key: Optional[str] = None
    api_key_env: Optional[str] = None
    api_key_file: Optional[str] = None
    ttl: str = "30m"
    startup_timeout_s: float = 180.0
    request_timeout_s: float = 300.0


@dataclass
class EnvConfig:
    backend: str = "local"
    max_sessions: Optional[int] = None  # AReaL workflow, per process; null: local unbounded, aenv AENV_MAX_SESSIONS
    aenv: AenvConfig = field(default_factory=AenvConfig)

    AENV_MAX_SESSIONS: ClassVar[int] = 16

    def session_bound(self) -> Optional[int]:
        """Environment sessions the AReaL workflow keeps per process (None: no bound)."""
        if self.max_sessions is not None:
            return self.max_sessions
        return self.AENV_MAX_SESSIONS if self.backend == "aenv" else None


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
        """The API keys this process would use (literal, from a file or a variable), for redaction.
        Never raises: a missing file or variable is simply not a secret."""
        out = []
        for section in (self.llm, self.user_llm, self.env.aenv):
            try:
                key = api_key_of(section)
            except InvalidInput:
                key = section.api_key
            if key and key not in out:
                out.append(key)
        return out


KEY_FIELDS = ("llm", "user_llm", "env.aenv")  # the config sections that hold an API key


def api_key_of(section) -> Optional[str]:
    """The API key of an endpoint section (`llm`, `user_llm`, `env.aenv`), read now.

    In order: `api_key`; the contents of `api_key_file` (stripped); the variable named by
    `api_key_env`; the section's standard variable (OPENAI_API_KEY, TAU2_USER_LLM_API_KEY,
    AENV_API_KEY) if set; else None. A file or a variable the user named that is missing or
    empty raises InvalidInput (naming the path or the variable, never a key).
    """
    if section.api_key:
        return _one_line_key(section.api_key, "the literal api_key")
    if section.api_key_file:
        try:
            key = Path(section.api_key_file).expanduser().read_text().strip()
        except OSError as e:
            raise InvalidInput(f"api_key_file {shown(section.api_key_file)} cannot be read: {type(e).__name__}") from None
        if not key:
            raise InvalidInput(f"api_key_file {shown(section.api_key_file)} is empty")
        return _one_line_key(key, f"api_key_file {shown(section.api_key_file)}")
    if section.api_key_env:
        key = os.environ.get(section.api_key_env, "").strip()
        if not key:
            raise InvalidInput(f"api_key_env names {section.api_key_env}, which is not set in this process "
                               f"(on a Ray cluster, start every node with it set)")
        return _one_line_key(key, f"the variable {section.api_key_env}")
    key = os.environ.get(section.KEY_ENV, "").strip()
    return _one_line_key(key, f"the variable {section.KEY_ENV}") if key else None


_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _one_line_key(key: str, where: str) -> str:
    """The key, if it can be an HTTP header value: no whitespace or control character inside (a
    key file with two lines would otherwise send its second line as a header of its own)."""
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in key):
        raise InvalidInput(f"the key in {where} has whitespace or control characters inside it: a key is one line "
                           f"without spaces (the key is not shown)")
    return key


def check_key_sources(cfg) -> None:
    """Read every key the config's endpoints need, here and now (InvalidInput naming the file or
    variable that is missing). Run where the requests will be made from: a sweep's driver."""
    llm, user = getattr(cfg, "llm", None), getattr(cfg, "user_llm", None)
    if llm is not None and not llm.scripted:
        api_key_of(llm)
    if user is not None and (user.base_url or user.model) and not getattr(llm, "scripted", None):
        api_key_of(user)
    env = getattr(cfg, "env", None)
    if env is not None and env.backend == "aenv" and env.aenv.system_url:
        api_key_of(env.aenv)


def check_secrets(cfg, *, remote: Optional[bool] = None) -> None:
    """Refuse a config whose literal API keys would be recorded by Ray.

    `remote` (default: the config's `ray.address` is set) means the config goes to a Ray
    cluster: the driver's command line, the job's entrypoint and runtime_env are stored in
    Ray's job table (dashboard /api/jobs/) and logs, so a literal `*.api_key` is refused
    with InvalidInput telling the user to use `*.api_key_env` / `*.api_key_file`. Also
    rejects a section that sets more than one of api_key, api_key_env, api_key_file.
    """
    if remote is None:
        ray_cfg = getattr(cfg, "ray", None)
        remote = bool(getattr(ray_cfg, "address", None))
    for name in KEY_FIELDS:
        section = cfg
        for part in name.split("."):
            section = getattr(section, part, None)
        if section is None:
            continue
        given = [f for f in ("api_key", "api_key_env", "api_key_file") if getattr(section, f)]
        if len(given) > 1:
            raise InvalidInput(f"{name}: set only one of {', '.join(f'{name}.{f}' for f in given)}")
        if section.api_key_env and not _VAR_NAME.fullmatch(section.api_key_env):
            raise InvalidInput(f"{name}.api_key_env is not the name of an environment variable (letters, digits and "
                               f"underscores): give the variable's NAME, e.g. {name}.api_key_env=MY_KEY, not the key "
                               f"(the value is not shown)")
        if remote and section.api_key:
            raise InvalidInput(
                f"{name}.api_key is a literal key and ray.address is set: Ray would record it in the job's "
                f"entrypoint / job table; use {name}.api_key_env=VARIABLE (set on every node) or "
                f"{name}.api_key_file=PATH instead")


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
        if key.rsplit(".", 1)[-1].startswith("api_key"):  # never echo what may be a key
            raise InvalidInput(f"invalid value for config key '{key}': {type(e).__name__} (the value is not shown)") from None
        raise InvalidInput(f"invalid value for config key '{key}': {_first_line(e)}") from None
    _validate(cfg)
    return cfg


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
            hint = f", did you mean '{close[0]}'" if close else f"; valid keys: {', '.join(sorted(valid))}"
            raise InvalidInput(f"unknown key {shown(full)}{hint}")
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
    if llm is not None and llm.capture is not None and llm.capture not in CAPTURE_MODES:
        checks.append(f"llm.capture='{llm.capture}' is not one of {', '.join(CAPTURE_MODES)} (or null: off)")
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
    if env is not None and env.max_sessions is not None and env.max_sessions < 1:
        checks.append(f"env.max_sessions must be >= 1 or null, got {env.max_sessions}")
    if checks:
        raise InvalidInput("; ".join(checks))
    check_secrets(cfg)


def _yaml_error(e: Exception) -> str:
    """yaml's problem and where (line, column), in one line."""
    problem, mark = getattr(e, "problem", None), getattr(e, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return _first_line(e)


def shown(value, limit: int = 80) -> str:
    """A value as error messages show it: its repr, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _first_line(e: Exception, limit: int = 300) -> str:
    line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return line if len(line) <= limit else f"{line[:limit]}... ({len(line)} characters)"
