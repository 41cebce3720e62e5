"""The pool's record of the policy's weights: the version its workers are told is served, whether
policy calls are held, and the policy endpoint they are sent to (RolloutPool.weight_update).

The pool tells every worker (`calls()`: RolloutWorker.set_weights, pause, resume), and a worker
it starts later (a replacement, or the first ones when the state was set before the pool
started) is told the same before its first episode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from rollout.core.failures import InvalidInput
from rollout.core.weights import PAUSE_GRACE_S
from rollout.pool.requests import Endpoint


@dataclass
class WeightState:
    version: Optional[int] = None  # None until the trainer sets one
    paused: bool = False
    policy: Optional[Endpoint] = None  # None: each request's own endpoint
    grace_s: float = PAUSE_GRACE_S  # the pause's: for the request a worker sent last to reach the engine

    def check(self, version: Any, policy: Any) -> None:
        """InvalidInput naming a bad `version` (an integer, not below the current one) or `policy`."""
        if type(version) is not int or version < 0:
            raise InvalidInput(f"version={version!r}: valid: an integer >= 0 (the trainer's weight version)")
        if self.version is not None and version < self.version:
            raise InvalidInput(f"version={version}: valid: an integer >= {self.version}, the version already set")
        if policy is not None and not isinstance(policy, Endpoint):
            raise InvalidInput(f"policy= is {type(policy).__name__}: valid: an Endpoint(base_url, ...) or None")

    @staticmethod
    def check_grace(grace_s: Any) -> None:
        """InvalidInput naming a bad pause `grace_s` (seconds from 0 to 60)."""
        if isinstance(grace_s, bool) or not isinstance(grace_s, (int, float)) or not 0 <= grace_s <= 60:
            raise InvalidInput(f"grace_s={grace_s!r}: valid: seconds from 0 to 60")

    def calls(self, started: bool) -> list[tuple[str, tuple]]:
        """The worker calls that put a worker in this state (none while it is the initial one;
        `started`: workers exist that may have been paused)."""
        calls: list[tuple[str, tuple]] = []
        if self.version is not None:
            calls.append(("set_weights", (self.version, self.policy)))
        if self.paused:
            calls.append(("pause", (self.grace_s,)))
        elif calls or started:
            calls.append(("resume", ()))
        return calls
