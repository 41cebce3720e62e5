"""The rollout pool's weight calls (`pause`, `resume`, `set_weight_version`, `weight_update`,
`weight_version`): the pool records the weight state (rollout/pool/weights.py) and tells every
worker, so that episodes run on through a trainer's weight swap (docs/pool.md "Weight updates")."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Optional

from rollout.core.weights import PAUSE_GRACE_S
from rollout.pool.requests import Endpoint
from rollout.pool.weights import WeightState


class WeightCalls:
    """Mixed into RolloutPool: uses its `_weights` (a WeightState), `_closed`, `_start_lock`,
    `dispatcher`, `_keys_read` and `_check_keys`."""

    @property
    def weight_version(self) -> Optional[int]:
        """The weight version the workers were last told is served (None until one is set)."""
        return self._weights.version

    def pause(self, *, grace_s: float = PAUSE_GRACE_S) -> None:
        """Hold every policy call not yet sent, in every worker, until `resume` (see
        `weight_update`); returns once every placed worker holds them and the call each sent
        last has had `grace_s` seconds to reach the engine, so that a swap now finds every call
        sent before the pause in the engine (rollout/core/weights.py). Calls in flight run on.
        Raises InvalidInput naming a bad `grace_s` (seconds from 0 to 60)."""
        WeightState.check_grace(grace_s)
        self._weights.grace_s = grace_s
        self._weights_changed(paused=True)

    def resume(self) -> None:
        """Let held and new policy calls go again."""
        self._weights_changed(paused=False)

    def set_weight_version(self, version: int, *, policy: Optional[Endpoint] = None) -> None:
        """The weight version served from now on: tokens of policy calls sent from now on are
        recorded with it (where the engine reports none). `policy`: the endpoint every policy call
        sent from now on goes to, in running and new episodes (None keeps the one in force).
        Raises InvalidInput naming a bad `version` (an integer, not below the current one) or
        `policy` (an Endpoint)."""
        self._check_weights(version, policy)
        self._weights_changed(version=version, policy=policy)

    @contextlib.contextmanager
    def weight_update(self, version: int, *, policy: Optional[Endpoint] = None, grace_s: float = PAUSE_GRACE_S) -> Iterator[None]:
        """`with pool.weight_update(v): <swap the engine's weights>`: pause (`grace_s`: see
        `pause`), the body, then `set_weight_version(v, policy=policy)` and resume. An exception
        in the body resumes without setting the version. Bad input raises InvalidInput before
        anything is paused."""
        self._check_weights(version, policy)
        self.pause(grace_s=grace_s)
        try:
            yield
            self.set_weight_version(version, policy=policy)
        finally:
            self.resume()

    def _check_weights(self, version: Any, policy: Any) -> None:
        if self._closed:
            raise RuntimeError("this RolloutPool is closed: create a new one")
        self._weights.check(version, policy)

    def _weights_changed(self, *, paused: Optional[bool] = None, version: Optional[int] = None, policy=None) -> None:
        """Record the weight state and tell the workers (once started; those started later are
        told when they start)."""
        if self._closed:
            raise RuntimeError("this RolloutPool is closed: create a new one")
        with self._start_lock:  # not while workers start: they are told the state the pool has then
            if policy is not None and self.dispatcher is not None and policy.api_key_env not in (None, *self._keys_read):
                self._check_keys(self.dispatcher, [policy.api_key_env])
            if paused is not None:
                self._weights.paused = paused
            if version is not None:
                self._weights.version = version
                self._weights.policy = policy or self._weights.policy
            if self.dispatcher is not None:
                self.dispatcher.broadcast(self._weights.calls(started=True))
