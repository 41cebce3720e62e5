"""What the AReaL workflow keeps per process, so that an episode costs what it costs in a sweep.

AReaL calls `Tau2Agent.run` thousands of times: concurrently in its own event loop (inline
mode), or in worker processes that unpickle the agent and `asyncio.run` each episode anew
(subprocess mode). Nothing may be rebuilt per episode that a sweep worker builds once, so the
state lives here, per process, not on the agent object:

- the resolved config, once per distinct overrides and environment (`runtime_key`: the
  overrides, the variables the defaults read, and the keys of the user simulator and aenv);
- per event loop, one `EpisodeRunner`: clients per endpoint (AReaL's `http_client` and
  `base_url`, each episode's own API key on its own requests) and, on the local backend, the
  environment sessions, reused across episodes; it is closed when its loop shuts down;
- on the aenv backend, one bounded pool of instances for the whole process (`env.max_sessions`,
  16 by default), run on a process-wide loop thread so that they outlive any one event loop,
  reused across episodes through `tau2_reset`, and released at exit (or when the config
  falls out of the cache: at most `MAX_CONFIGS` are kept).

An episode holds its session alone and resets it first: it never sees another's state.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import hashlib
import json
import logging
import os
import threading
import weakref
from typing import Any, Optional

from rollout.agent.runner import EpisodeRunner
from rollout.core.config import CONFIG_ENV_VARS, RolloutConfig, api_key_of, load_config
from rollout.env.backends import session_factory
from rollout.env.sessions import SessionPool
from rollout.env.threaded import LoopThread, ThreadedSession

log = logging.getLogger(__name__)
MAX_CONFIGS = 32
CLOSE_TIMEOUT_S = 60.0


def _fingerprint(*values: Optional[str]) -> str:
    return hashlib.sha256("\0".join(v or "" for v in values).encode()).hexdigest()[:16]


class Runtime:
    """One configuration's runners (one per event loop) and, for aenv, its instance pool."""

    def __init__(self, cfg: RolloutConfig, sessions_thread: LoopThread):
        self.cfg = cfg
        self.secrets = cfg.secrets()
        self._runners: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._closers: dict[int, Any] = {}
        self.shared_sessions: Optional[SessionPool] = None
        if cfg.env.backend == "aenv":
            factory = session_factory(cfg, None, None, self.secrets)
            self._thread = sessions_thread
            self.shared_sessions = SessionPool(lambda: ThreadedSession.open(sessions_thread, factory), cfg.env.session_bound())

    async def runner(self) -> EpisodeRunner:
        """The runner of the running event loop (created on first use, closed with the loop)."""
        loop = asyncio.get_running_loop()
        runner = self._runners.get(loop)
        if runner is None:
            runner = EpisodeRunner(self.cfg, self.cfg.env.session_bound(), sessions=self.shared_sessions)
            self._runners[loop] = runner
            self._closers[id(loop)] = closer = self._close_with_loop(loop, runner)
            await closer.__anext__()  # the loop now tracks it: its shutdown runs the finally below
        return runner

    async def _close_with_loop(self, loop, runner: EpisodeRunner):
        try:
            yield
        finally:
            self._runners.pop(loop, None)
            self._closers.pop(id(loop), None)
            await runner.close()

    async def close(self) -> None:
        """Release the shared aenv instances (the runners close with their loops)."""
        if self.shared_sessions is not None:
            await self.shared_sessions.close()


class ProcessRuntimes:
    """The per-process registry of `Runtime`s, by configuration (see module doc)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._configs: collections.OrderedDict[str, RolloutConfig] = collections.OrderedDict()
        self._runtimes: collections.OrderedDict[str, Runtime] = collections.OrderedDict()
        self._thread = LoopThread("rollout-aenv-sessions")
        atexit.register(self.close_all)

    def config(self, overrides: dict[str, Any]) -> tuple[str, RolloutConfig]:
        """(its key, the validated config) for these overrides in this process's environment now
        (resolved once per distinct key). Raises InvalidInput."""
        key = json.dumps([overrides, [os.environ.get(v) for v in CONFIG_ENV_VARS]], sort_keys=True, default=repr)
        with self._lock:
            cfg = self._configs.get(key)
            if cfg is not None:
                self._configs.move_to_end(key)
                return key, cfg
        cfg = load_config(overrides)
        with self._lock:
            self._configs[key] = cfg
            while len(self._configs) > MAX_CONFIGS:
                self._configs.popitem(last=False)
        return key, cfg

    def runtime(self, overrides: dict[str, Any]) -> Runtime:
        """The runtime of these overrides; its keys (user simulator, aenv) are read now, so a
        changed key gets runtimes of its own. Raises InvalidInput (e.g. a missing key file)."""
        key, cfg = self.config(overrides)
        key = f"{key}|{_fingerprint(api_key_of(cfg.user_llm), api_key_of(cfg.env.aenv))}"
        evicted = []
        with self._lock:
            runtime = self._runtimes.get(key)
            if runtime is None:
                runtime = self._runtimes[key] = Runtime(cfg, self._thread)
            self._runtimes.move_to_end(key)
            while len(self._runtimes) > MAX_CONFIGS:
                evicted.append(self._runtimes.popitem(last=False)[1])
        for old in evicted:
            asyncio.get_running_loop().create_task(old.close())
        return runtime

    def close_all(self) -> None:
        """Release every aenv instance this process holds (at exit)."""
        with self._lock:
            runtimes, self._runtimes = list(self._runtimes.values()), collections.OrderedDict()
        for runtime in runtimes:
            if runtime.shared_sessions is None:
                continue
            try:
                self._thread.run_sync(runtime.close(), CLOSE_TIMEOUT_S)
            except Exception:
                log.warning("releasing aenv instances at exit failed", exc_info=True)


RUNTIMES = ProcessRuntimes()  # this process's runtimes, by configuration (see module doc)
