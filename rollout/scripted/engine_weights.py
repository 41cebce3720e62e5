"""The scripted engine's weights: the version it serves, how long its generations take, the
generations in flight, and a log of every policy generation.

What vLLM and SGLang do when a trainer swaps their weights, and so what this double does: the
version served is bumped; every generation in flight ends at once with finish reason `abort` and
the tokens generated so far (their ids and logprobs); generations after it run under the new
version. Only the policy's generations are the engine's: the user simulator is another model
(the same server answers it, never aborted or slowed).

A generation of n tokens takes n x `token_latency_s` (0, the default: instant, never in flight
long enough to be aborted); "generated so far" are the tokens whose time has passed when the
swap comes. A request is in the engine from its arrival (`flight`), as in vLLM and SGLang, where
a swap aborts the requests waiting to be scheduled too: all tokens of one answer are of the
version current when its request arrived.

`log` holds one entry per policy generation, in the order they ended: `endpoint` (chat |
completions | generate), `episode` (the request's X-Rollout-Episode header), `prompt_ids` (as
sent; None on the chat endpoint without token capture), `partial` (how many of the prompt's last
ids are a partial completion it continued), `completion_ids`, `logprobs` (None where the answer
carries none), `versions` (one per completion id, the version as the server reports it) and
`finish_reason`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass(eq=False)
class Flight:
    """One request in the engine, from its arrival: the version it is served under and, once a
    swap aborts it, when."""

    version: str
    latency_s: float
    done: threading.Event = field(default_factory=threading.Event)
    aborted_at: Optional[float] = None

    def run(self, n: int) -> Optional[int]:
        """Spend the time of `n` tokens from now: the tokens generated when a swap aborted the
        request (0 when it was aborted before its generation started), or None when it completed."""
        started = time.monotonic()
        if self.aborted_at is None and self.latency_s > 0 and n > 0:
            self.done.wait(n * self.latency_s)
        if self.aborted_at is None:
            return None
        generated = max(0, int((self.aborted_at - started) / self.latency_s)) if self.latency_s > 0 else 0
        return generated if generated < n else None


class EngineWeights:
    """See the module doc. Thread-safe (the server answers each request in its own thread)."""

    def __init__(self, version: str = "default", token_latency_s: float = 0.0):
        self._lock = threading.Lock()
        self.version = version  # as SGLang reports it: a string ("default" until a version is named)
        self.token_latency_s = 0.0
        self.set_token_latency(token_latency_s)
        self.updates = 0
        self._flights: set = set()
        self._local = threading.local()  # the flight open in this thread
        self.log: list[dict[str, Any]] = []

    def set_token_latency(self, seconds: float) -> None:
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 <= seconds <= 60:
            raise ValueError(f"token latency {seconds!r}: valid: seconds from 0 to 60")
        with self._lock:
            self.token_latency_s = float(seconds)

    def update(self, version: Any) -> None:
        """Swap the weights: serve `version` (an integer) from now on and abort every generation
        in flight. ValueError names a version that is not an integer."""
        if type(version) is not int:
            raise ValueError(f"version {version!r}: valid: an integer")
        with self._lock:
            self.version = str(version)
            self.updates += 1
            now = time.monotonic()
            for flight in self._flights:
                if flight.aborted_at is None:
                    flight.aborted_at = now
                    flight.done.set()

    @contextlib.contextmanager
    def flight(self) -> Iterator[Flight]:
        """A request from its arrival to its answer: served under the version current when it
        arrived, aborted by a swap while it is in the engine (with a token latency; without one
        generations are instant and never aborted). Re-entrant in a thread: the HTTP layer opens
        it as soon as a generation request's first line is read, the handler uses the same."""
        open_ = getattr(self._local, "flight", None)
        if open_ is not None:
            yield open_
            return
        with self._lock:
            flight = Flight(self.version, self.token_latency_s)
            if flight.latency_s > 0:
                self._flights.add(flight)
        self._local.flight = flight
        try:
            yield flight
        finally:
            self._local.flight = None
            with self._lock:
                self._flights.discard(flight)

    def record(
        self,
        endpoint: str,
        headers: dict[str, str],
        prompt_ids: Optional[list[int]],
        partial: int,
        ids: list[int],
        logprobs: Optional[list[float]],
        version: str,
        finish: Optional[str],
    ) -> None:
        """One policy generation into the log (module doc); `headers` the request's, lower-cased."""
        entry = {
            "endpoint": endpoint,
            "episode": headers.get("x-rollout-episode"),
            "prompt_ids": None if prompt_ids is None else list(prompt_ids),
            "partial": partial,
            "completion_ids": list(ids),
            "logprobs": None if logprobs is None else list(logprobs),
            "versions": [version] * len(ids),
            "finish_reason": finish,
        }
        with self._lock:
            self.log.append(entry)
