"""Failure taxonomy: infrastructure failures are classified, never scored.

An episode either ends with a reward (the policy's outcome, scored by tau2) or with a
`Failure` naming which piece of infrastructure broke. The AReaL workflow raises
`EpisodeFailure`; a sweep records the failure with reward null.
"""

from __future__ import annotations

import enum
import json
import re
import traceback
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass


class FailureClass(str, enum.Enum):
    """Why an episode produced no reward."""

    MODEL_ERROR = "model_error"  # the agent's LLM endpoint failed (HTTP error, refused, timeout)
    USER_SIM_ERROR = "user_sim_error"  # the user simulator's endpoint failed or answered nothing
    ENV_ERROR = "env_error"  # the environment (tau2 env, env server, evaluator) failed
    TIMEOUT = "timeout"  # the per-episode wall-clock limit was reached
    INVALID_INPUT = "invalid_input"  # bad domain / task id / config: never retried
    WORKER_DIED = "worker_died"  # the process running the episode died (Ray sweeps)
    CANCELLED = "cancelled"  # the caller cancelled it (the rollout pool's cancel): not a sample

    @property
    def retryable(self) -> bool:
        """Infrastructure failures may succeed on a retry; invalid input and cancellations never do."""
        return self not in (FailureClass.INVALID_INPUT, FailureClass.CANCELLED)


@dataclass(frozen=True)
class Failure:
    """A classified failure: its class and a redacted, human-readable message."""

    failure_class: FailureClass
    message: str

    def to_dict(self) -> dict:
        return {"class": self.failure_class.value, "message": self.message}

    @classmethod
    def from_dict(cls, d: dict) -> Failure:
        return cls(FailureClass(d["class"]), d["message"])


class EpisodeFailure(Exception):
    """Raised by the AReaL workflow (and internally) when an episode fails for an infra reason."""

    def __init__(self, failure_class: FailureClass, message: str):
        super().__init__(f"{failure_class.value}: {message}")
        self.failure = Failure(failure_class, message)

    @property
    def failure_class(self) -> FailureClass:
        return self.failure.failure_class


class InvalidInput(EpisodeFailure, ValueError):
    """Bad input (unknown domain, task id, config key or type). Raised before any model call."""

    def __init__(self, message: str):
        super().__init__(FailureClass.INVALID_INPUT, message)


def shown(value, limit: int = 80) -> str:
    """A value as error messages show it: its repr, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


_KEY_PATTERNS = (
    re.compile(r"sk-[A-Za-z0-9_\-]{6,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9_\-\.]{6,}"),
)


def echoed_forms(secret: str) -> set[str]:
    """The ways a server or a message can quote a secret: as is, JSON-escaped, repr-escaped and
    URL-encoded, and each line of it on its own."""
    forms = {secret, json.dumps(secret)[1:-1], repr(secret)[1:-1], urllib.parse.quote(secret, safe="")}
    forms.update(line.strip() for line in secret.splitlines())
    return {f for f in forms if len(f) >= 4}


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Return `text` with every known secret and anything shaped like an API key replaced.

    `secrets` are exact strings (the configured API keys), each redacted in every form a server
    may echo it in (`echoed_forms`); the patterns catch keys that reach a message through a
    server's error body.
    """
    for secret in secrets:
        if secret and len(secret) >= 4:
            for form in sorted(echoed_forms(secret), key=len, reverse=True):
                text = text.replace(form, "***")
    for pattern in _KEY_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "***", text)
    return text


def frames(e: BaseException) -> str:
    """Where an exception was raised: its traceback's frames without its message (which may
    quote a secret), for logs."""
    return "".join(traceback.format_tb(e.__traceback__)).rstrip()


def described(e: BaseException, secrets: Iterable[str | None] = (), prefix: str = "") -> str:
    """An exception as a failure message: `<prefix><Type>: <message>`, redacted (`redact`)."""
    return redact(f"{prefix}{type(e).__name__}: {e}", secrets)
