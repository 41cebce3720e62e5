"""The configuration schema: typed dataclasses whose fields carry their help text and valid values.

Every field is declared with `setting(default, help=..., choices=..., minimum=..., above=...,
maximum=...)`: the help is one line; `choices` (if any) are the only values the field accepts,
and a numeric field's bounds (`Bounds`) the range it accepts, besides null for an optional
field. Validation (check.py) and the reference (reference.py, docs/config.md) read them from
here; values stay plain strings in YAML and in the loaded config. The defaults a user gets
are the packaged YAML files' (rollout/defaults/), where they set a value.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Iterator
from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass
from typing import Any, ClassVar, Optional

from rollout.core.config.keys import KeySource, secrets_of
from rollout.core.tokens import CAPTURE_MODES


@dataclass(frozen=True)
class Bounds:
    """A numeric field's range: at least `minimum`, more than `above`, at most `maximum` (None: no such bound)."""

    minimum: Optional[float] = None
    above: Optional[float] = None
    maximum: Optional[float] = None

    def allows(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:  # NaN
            return False
        return (
            (self.minimum is None or value >= self.minimum)
            and (self.above is None or value > self.above)
            and (self.maximum is None or value <= self.maximum)
        )

    def text(self) -> str:
        """The range as the reference and error messages show it: `>= 1`, `> 0`, `0 to 64`."""
        low = f">= {self.minimum:g}" if self.minimum is not None else f"> {self.above:g}" if self.above is not None else ""
        if self.maximum is None:
            return low
        if self.minimum is not None:
            return f"{self.minimum:g} to {self.maximum:g}"
        return f"{low}, <= {self.maximum:g}" if low else f"<= {self.maximum:g}"


def setting(
    default: Any = MISSING,
    *,
    help: str,
    choices: tuple[str, ...] = (),
    minimum: Optional[float] = None,
    above: Optional[float] = None,
    maximum: Optional[float] = None,
    default_factory: Any = MISSING,
) -> Any:
    """A dataclass field with its one-line `help` and, for a field with a fixed set of values, its
    `choices`, for a numeric field its bounds (`Bounds`), in the field's metadata."""
    metadata: dict[str, Any] = {"help": help}
    if choices:
        metadata["choices"] = tuple(choices)
    if (minimum, above, maximum) != (None, None, None):
        metadata["bounds"] = Bounds(minimum, above, maximum)
    return field(default=default, default_factory=default_factory, metadata=metadata)


def same_as(owner: type, name: str, default: Any) -> Any:
    """A field that redeclares `owner`'s field `name` with another default (same help, choices and bounds)."""
    return field(default=default, metadata=owner.__dataclass_fields__[name].metadata)


def choices_of(schema: type, name: str) -> tuple[str, ...]:
    """The valid values of a schema's field (empty: any value of its type)."""
    return schema.__dataclass_fields__[name].metadata.get("choices", ())


def walk(schema: type, prefix: str = "") -> Iterator[tuple[str, Field, Any]]:
    """(dotted key, field, type) of every field of a schema in declaration order, each section (a
    dataclass-typed field) followed by its own fields."""
    hints = typing.get_type_hints(schema)
    for f in fields(schema):
        yield f"{prefix}{f.name}", f, hints[f.name]
        if is_dataclass(hints[f.name]):
            yield from walk(hints[f.name], f"{prefix}{f.name}.")


def is_optional(type_hint: Any) -> bool:
    """Whether a field of this type accepts null."""
    return type(None) in typing.get_args(type_hint)


_API_KEY = "a literal key: fine locally, refused with ray.address / `submit` (Ray records it)"
_API_KEY_ENV = "the NAME of an environment variable holding the key, read where requests are made"
_API_KEY_FILE = "a file holding the key, read where requests are made"


@dataclass
class EndpointConfig(KeySource):
    """An OpenAI-compatible chat-completions endpoint (API key: see `api_key_of`)."""

    base_url: Optional[str] = setting(None, help="the server's base URL (e.g. http://gpu:8000/v1)")
    api_key: Optional[str] = setting(None, help=_API_KEY)
    api_key_env: Optional[str] = setting(None, help=_API_KEY_ENV)
    api_key_file: Optional[str] = setting(None, help=_API_KEY_FILE)
    model: Optional[str] = setting(None, help="the model name; null: ask the server (GET /v1/models) and use its first model")
    max_retries: int = setting(1, minimum=0, help="client-side retries per request (openai's backoff)")
    request_timeout_s: float = setting(
        300.0, above=0, help="seconds a request may take before it is cut (then retried, see max_retries)"
    )
    max_concurrency: int = setting(0, minimum=0, help="requests in flight to this endpoint across the whole sweep; 0: no cap")


@dataclass
class AgentLLMConfig(EndpointConfig):
    scripted: Optional[str] = setting(
        None,
        choices=("oracle", "noop"),
        help="start the built-in scripted server with this policy and point both endpoints at it",
    )
    caller_http_client: bool = setting(
        False,
        help="AReaL workflow: true sends the requests over the caller's per-call httpx client; false sends them to "
        "its base_url (with its key) over this project's lean client (several times less CPU per request: bench P9)",
    )
    capture: Optional[str] = setting(
        None,
        choices=CAPTURE_MODES,
        help="token capture for training: token_in (the context kept as ids client-side, sent to the engine's token "
        "interface: every episode one exact sequence; needs llm.tokenizer), token_ids (vLLM's chat endpoint, >= 0.10.2), "
        "tokens_as_ids (older vLLM, completion ids only); null: off, the requests stay exactly tau2's",
    )
    engine: str = setting(
        "vllm",
        choices=("vllm", "sglang"),
        help="token_in: the engine's token interface: vllm (POST base_url/completions with a token-id prompt) or sglang "
        "(POST /generate at the server root)",
    )
    tokenizer: Optional[str] = setting(
        None,
        help="token_in: the model directory the engine serves from (its tokenizer and chat template, loaded with transformers)",
    )
    tool_call_parser: Optional[str] = setting(
        "hermes",
        choices=("hermes",),
        help="token_in: how completions are parsed into tool calls, as vLLM's --tool-call-parser of that name (Qwen2.5, Qwen3)",
    )
    reasoning_parser: Optional[str] = setting(
        None,
        choices=("qwen3",),
        help="token_in: as vLLM's --reasoning-parser of that name (the think block stays in the model's context, tau2 gets "
        "the content after it); null: the think block is part of the content, as with no parser on the server",
    )
    chat_template_kwargs: dict[str, Any] = setting(
        default_factory=dict,
        help="passed to the chat template (e.g. {enable_thinking: false}); token_in renders with them, chat capture sends them",
    )


@dataclass
class UserLLMConfig(EndpointConfig):
    KEY_ENV: ClassVar[str] = "TAU2_USER_LLM_API_KEY"
    model: Optional[str] = setting(
        None,
        help='the model name (a litellm-style "openai/<model>" prefix is accepted and stripped); null: ask the '
        "server (GET /v1/models) and use its first model",
    )
    max_retries: int = same_as(EndpointConfig, "max_retries", 2)
    request_timeout_s: float = same_as(EndpointConfig, "request_timeout_s", 120.0)
    temperature: float = setting(0.0, help="the user simulator's sampling temperature (tau2's default: 0.0)")
    extra_body: dict[str, Any] = setting(default_factory=dict, help="fields added to every user simulator request body")


@dataclass
class SamplingConfig:
    """Agent sampling parameters, sent with every agent request."""

    preset: str = setting("train", help="the preset the other fields start from (`sampling=NAME` selects one)")
    temperature: Optional[float] = setting(1.0, help="the agent's sampling temperature; null: not sent")
    top_p: Optional[float] = setting(None, help="nucleus sampling; null: not sent (tau2 sends none)")
    max_tokens: Optional[int] = setting(None, help="most completion tokens per agent request; null: not sent")
    parallel_tool_calls: Optional[bool] = setting(None, help="sent with requests that carry tools; null: not sent")
    send_seed: bool = setting(True, help="send each episode's seed (derived per episode) with every agent request")
    extra_body: dict[str, Any] = setting(default_factory=dict, help="fields added to every agent request body (e.g. {top_k: 20})")


@dataclass
class EpisodeConfig:
    max_steps: int = setting(200, minimum=1, help="orchestrator steps per episode, every message counts (tau2 run's default)")
    max_errors: int = setting(10, minimum=1, help="tool errors before termination (tau2's default)")
    timeout_s: float = setting(
        3600.0,
        above=0,
        help="wall clock per episode, exceeded: classified failure 'timeout' (sized for ~200 completions at ~18 s "
        "each; a hung request is cut much earlier by llm/user_llm.request_timeout_s)",
    )
    solo: Optional[bool] = setting(
        None,
        help="true: solo (the agent alone), false: with the user simulator; null: solo when no user simulator is "
        "configured and the domain supports it",
    )
    tag_requests: bool = setting(True, help="send X-Rollout-* headers (domain, task, sample, role) with every LLM request")
    invalid_tool_args: str = setting(
        "end",
        choices=("end", "feedback"),
        help="a tool call whose arguments are not JSON: end (tau2: the episode ends, agent_error, reward 0) or feedback "
        "(RL: the model is shown the JSON error; counts as a tool error)",
    )
    empty_reply_retries: int = setting(
        3, minimum=0, help="an empty reply (no text, no tool call) is regenerated this many times, as tau2's generate"
    )
    max_prompt_tokens: Optional[int] = setting(
        None,
        minimum=1,
        help="token_in: a policy call whose prompt would be longer ends the episode there, as tau2 ends one out of steps "
        "(max_steps; tau2 scores what happened); null: no bound (a trainer's budget: SkyRL's max_input_length)",
    )
    max_response_tokens: Optional[int] = setting(
        None,
        minimum=1,
        help="token_in: the tokens an episode may add after its first prompt (completions and what comes between them); "
        "each completion is bounded by what is left, and the episode ends when nothing is (verl's response_length)",
    )


@dataclass
class AenvConfig(KeySource):
    """The aenv backend: local servers on loopback, or an AEnvironment cluster."""

    KEY_ENV: ClassVar[str] = "AENV_API_KEY"

    name: str = setting("tau2-rollout-env@0.1.0", help="the aenv environment: this project's env (reset per episode)")
    system_url: Optional[str] = setting(None, help="an AEnvironment cluster's URL; null: local servers on 127.0.0.x")
    api_key: Optional[str] = setting(None, help=_API_KEY)
    api_key_env: Optional[str] = setting(None, help=_API_KEY_ENV)
    api_key_file: Optional[str] = setting(None, help=_API_KEY_FILE)
    ttl: str = setting("30m", help="cluster instances' time to live (released explicitly anyway)")
    startup_timeout_s: float = setting(
        180.0, above=0, help="seconds an environment instance (or local server) may take to be ready"
    )
    request_timeout_s: float = setting(300.0, above=0, help="seconds a request to the environment's server may take")


@dataclass
class EnvConfig:
    AENV_MAX_SESSIONS: ClassVar[int] = 16  # max_sessions when null on the aenv backend

    backend: str = setting(
        "local", choices=("local", "aenv"), help="local: tau2 in-process; aenv: an aenv MCP server per slot (docs/aenv.md)"
    )
    max_sessions: Optional[int] = setting(
        None,
        minimum=1,
        help=f"AReaL workflow: environment sessions kept open per process, reused across episodes (episodes beyond "
        f"it wait for one); null: local no bound, aenv {AENV_MAX_SESSIONS} (sweeps: ray.slots_per_worker)",
    )
    aenv: AenvConfig = setting(default_factory=AenvConfig, help=AenvConfig.__doc__)

    def session_bound(self) -> Optional[int]:
        """Environment sessions the AReaL workflow keeps per process (None: no bound)."""
        if self.max_sessions is not None:
            return self.max_sessions
        return self.AENV_MAX_SESSIONS if self.backend == "aenv" else None


@dataclass
class TaskSetConfig:
    """A task set: a file of tau2 tasks for one tau2 domain, run under the set's name (docs/tasks.md)."""

    domain: str = setting(help="the tau2 domain the tasks belong to (e.g. airline)")
    tasks: str = setting(help="a JSON file: a list of tau2 Task objects (tau2's tasks.json format)")
    db: Optional[str] = setting(None, help="a database file in the domain's format; null: the domain's default database")
    splits: Optional[str] = setting(None, help="a JSON file {split: [task ids]}; null: one split, base, of every task")

    def __post_init__(self):  # files are read where episodes run: name them the same everywhere
        self.tasks = os.path.abspath(self.tasks)
        self.db = os.path.abspath(self.db) if self.db else None
        self.splits = os.path.abspath(self.splits) if self.splits else None


@dataclass
class RolloutConfig:
    """Everything one episode needs besides its (domain, task_id, sample)."""

    CONF_FILES: ClassVar[tuple[str, ...]] = ("defaults.yaml",)

    llm: AgentLLMConfig = setting(
        default_factory=AgentLLMConfig, help="the policy (agent) endpoint: any OpenAI-compatible chat-completions server"
    )
    user_llm: UserLLMConfig = setting(
        default_factory=UserLLMConfig, help="the tau2 user simulator endpoint (same variables as AEnvironment's tau2 env)"
    )
    sampling: SamplingConfig = setting(default_factory=SamplingConfig, help=SamplingConfig.__doc__)
    episode: EpisodeConfig = setting(default_factory=EpisodeConfig, help="an episode's limits and mode")
    env: EnvConfig = setting(default_factory=EnvConfig, help="the environment backend the episodes run on")
    task_sets: dict[str, TaskSetConfig] = setting(
        default_factory=dict, help="task sets by name, each usable wherever a domain name goes (docs/tasks.md)"
    )

    def secrets(self) -> list[str]:
        """The API keys this process would use (literal, from a file or a variable), for redaction.
        Never raises: a missing file or variable is simply not a secret."""
        return secrets_of(self)


SCRIPTED_POLICIES = choices_of(AgentLLMConfig, "scripted")
# The model names the scripted server (`llm.scripted`) answers to, as the agent and as the user simulator.
SCRIPTED_AGENT_MODEL = "scripted-agent"
SCRIPTED_USER_MODEL = "scripted-user"
ENGINES = choices_of(AgentLLMConfig, "engine")
TOOL_CALL_PARSERS = choices_of(AgentLLMConfig, "tool_call_parser")
REASONING_PARSERS = choices_of(AgentLLMConfig, "reasoning_parser")
ENV_BACKENDS = choices_of(EnvConfig, "backend")
INVALID_TOOL_ARGS = choices_of(EpisodeConfig, "invalid_tool_args")
KEY_FIELDS = tuple(key for key, _, hint in walk(RolloutConfig) if isinstance(hint, type) and issubclass(hint, KeySource))
