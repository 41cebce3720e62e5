"""The outcome of one episode: a reward (scored by tau2) or a classified failure, never both."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Optional

from rollout.core.failures import EpisodeFailure, Failure, FailureClass, InvalidInput
from rollout.core.tokens import TurnRecord


@dataclass
class Usage:
    """Requests and tokens of one side of an episode."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    def add(self, requests: int, input_tokens: int, output_tokens: int) -> None:
        self.requests += requests
        self.input_tokens += input_tokens or 0
        self.output_tokens += output_tokens or 0


@dataclass
class EpisodeResult:
    """One episode's outcome. Exactly one of `reward` and `failure` is set.

    `messages` is the trajectory in tau2's message format (JSON-ready dicts), `reward_info`
    tau2's RewardInfo breakdown, `termination` tau2's termination reason.
    """

    domain: str  # the name the episode was asked for: a tau2 domain or a task set
    task_id: str
    sample: int = 0
    seed: Optional[int] = None
    solo: bool = False
    tau2_domain: Optional[str] = None  # the tau2 domain the episode ran in (a task set's domain); None: not resolved
    reward: Optional[float] = None
    reward_info: Optional[dict[str, Any]] = None
    termination: Optional[str] = None
    failure: Optional[Failure] = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    invalid_tool_calls: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    tool_errors: int = 0
    usage: dict[str, dict[str, int]] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    turns: list[Optional[TurnRecord]] = field(default_factory=list)  # token capture: one per policy call
    capture_errors: list[str] = field(default_factory=list)  # why a call's tokens are absent (turns[i] None)
    budget_reached: Optional[str] = None  # the token budget ended the episode (termination max_steps): which bound
    episode_id: Optional[str] = None  # sent as X-Rollout-Episode with its LLM requests (servers' logs join on it)

    @property
    def ok(self) -> bool:
        return self.failure is None

    def reward_or_raise(self) -> float:
        """The reward as a Python float; raises EpisodeFailure if the episode failed
        (InvalidInput for bad input)."""
        if self.failure is not None:
            if self.failure.failure_class is FailureClass.INVALID_INPUT:
                raise InvalidInput(self.failure.message)
            raise EpisodeFailure(self.failure.failure_class, self.failure.message)
        return float(self.reward)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(replace(self, turns=[]))  # turns apart: asdict would copy their token lists id by id
        d["turns"] = [t.to_dict() if t is not None else None for t in self.turns]
        d["failure"] = self.failure.to_dict() if self.failure else None
        return d

    def transcript(self, width: int = 160) -> str:
        """A short human-readable transcript: one line per message."""
        lines = []
        for m in self.messages:
            role = m.get("role", "?")
            if m.get("tool_calls"):
                body = "; ".join(f"{tc['name']}({_short(tc['arguments'], 80)})" for tc in m["tool_calls"])
                body = f"[calls] {body}"
            else:
                body = (m.get("content") or "").replace("\n", " ")
            lines.append(f"{role:>9}: {_short(body, width)}")
        return "\n".join(lines)


def _short(value: Any, n: int) -> str:
    s = value if isinstance(value, str) else str(value)
    return s if len(s) <= n else s[: n - 3] + "..."
