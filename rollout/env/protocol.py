"""The protocol between the agent side and an environment backend, and its wire types.

An `EnvSession` is one environment slot: it serves one episode at a time and is reused
across episodes through `reset`. It owns everything of the episode but the policy: the
tau2 environment and its database, the trajectory with tau2's step and error
accounting, the user simulator, and the evaluation. The agent side drives it with one
call per model generation. Backends: `LocalSession` (tau2 in-process) and `AenvSession`
(an aenv MCP server hosting a LocalSession). All wire types are JSON-ready.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Protocol

from rollout.core.clients import RawToolCall
from rollout.core.config import EpisodeConfig

__all__ = ["EnvSession", "Opening", "RawToolCall", "ResetRequest", "Scored", "StepOutcome", "StopEpisode"]


class StopEpisode(Exception):
    """Control flow: the episode ended with a tau2 termination reason."""

    def __init__(self, reason):
        super().__init__(reason.value)  # reason: tau2 TerminationReason
        self.reason = reason


_EPISODE = EpisodeConfig()


@dataclass
class ResetRequest:
    """What the agent side asks of `reset`: the episode and the limits to enforce."""

    domain: str
    task_id: str
    solo: bool
    sample: int = 0
    seed: Optional[int] = None
    episode_id: str = ""
    # the limits: `episode.*` of the config (their defaults are EpisodeConfig's)
    max_steps: int = _EPISODE.max_steps
    max_errors: int = _EPISODE.max_errors
    tag_requests: bool = _EPISODE.tag_requests
    invalid_tool_args: str = _EPISODE.invalid_tool_args  # "end" (tau2) | "feedback" (see trajectory.EpisodeRecorder)
    empty_reply_retries: int = _EPISODE.empty_reply_retries  # tau2's generate regenerates an empty reply this many times


@dataclass
class Opening:
    """The episode as the policy first sees it."""

    system_prompt: str
    tools: list[dict]  # OpenAI function schemas {"type": "function", "function": {...}}
    conversation: list[dict]  # OpenAI chat messages as tau2's agent is shown them: greeting, history, first user message
    termination: Optional[str] = None  # the episode already ended (e.g. the user stopped at once)


@dataclass
class StepOutcome:
    """The result of one agent generation."""

    results: list[str] = field(default_factory=list)  # per tool call, in call order: the text the model sees
    user_reply: Optional[str] = None  # the user's answer when the agent spoke to the user
    termination: Optional[str] = None  # tau2 termination reason when the episode ended here
    seen: list[dict] = field(default_factory=list)  # what the agent is now shown in addition (chat messages)
    message_index: Optional[int] = None  # where the generation was recorded in the trajectory (None: nowhere)


@dataclass
class Scored:
    """The end of an episode: tau2's reward and the trajectory in tau2's message format."""

    reward: float
    reward_info: dict[str, Any]
    termination: str
    messages: list[dict]
    steps: int
    tool_errors: int
    invalid_tool_calls: list[dict]
    user_usage: dict[str, int]
    durations: dict[str, float]


def is_empty_reply(text: Optional[str], calls: list) -> bool:
    """tau2's rule for a reply to regenerate: no tool calls and no content but whitespace."""
    return not calls and not (text or "").strip()


def request_headers(req: ResetRequest, role: str) -> dict[str, str]:
    """X-Rollout-* headers tagging every LLM request of an episode (role: agent | user)."""
    if not req.tag_requests:
        return {}
    return {
        "X-Rollout-Episode": req.episode_id,
        "X-Rollout-Domain": req.domain,
        "X-Rollout-Task-Id": str(req.task_id),
        "X-Rollout-Sample": str(req.sample),
        "X-Rollout-Role": role,
        "X-Rollout-Mode": "solo" if req.solo else "user",
    }


def to_wire(obj) -> dict:
    return asdict(obj)


def from_wire(cls, data: dict):
    return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class EnvSession(Protocol):
    async def reset(self, request: ResetRequest) -> Opening:
        """Open a fresh episode (new database copy, new trajectory). Raises EpisodeFailure."""

    async def agent_step(self, text: Optional[str], tool_calls: list[RawToolCall]) -> StepOutcome:
        """Record one agent generation and act on it (run its tools, or the user's turn)."""

    async def end(self, reason: str) -> None:
        """End the episode now with tau2 termination `reason` (e.g. max_steps: the agent side's
        token budget ran out), unless it already ended; nothing is recorded as a message."""

    async def finish(self) -> Scored:
        """Score the episode with tau2's evaluator (once). Raises EpisodeFailure(ENV_ERROR)."""

    async def close(self) -> None:
        """Release the slot's resources (processes, instances)."""
