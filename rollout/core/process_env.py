"""The process defaults this project needs, in one place; applied by its entry points only.

Offline and quiet: litellm's local cost map (no fetch at import), no `.env` loading by
tau2's import, no Agents SDK trace export, no Ray usage stats, no FastMCP update check or
banner, and no output from tau2's loguru logger (it logs whole transcripts at DEBUG on every
step). Importing `rollout` changes nothing in the process: the entry points (the
`tau2-rollout` command, the pool's Ray workers, the aenv environment module, the scripted
server, the bench, launch/areal_train.py) call `apply_defaults()` first thing, and so should a
program that uses the library (before it imports tau2). `child_env()` is the environment for a
process this project starts (Ray workers, aenv servers). `settle_heap()` keeps a warm
long-lived process's objects out of the garbage collector's full collections; `frozen_heap()`
does it for the length of one build.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator, Mapping, MutableMapping
from types import MappingProxyType

DEFAULTS: Mapping[str, str] = MappingProxyType(
    {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "PYTHON_DOTENV_DISABLED": "1",
        "OPENAI_AGENTS_DISABLE_TRACING": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
        "FASTMCP_CHECK_FOR_UPDATES": "off",
        "FASTMCP_SHOW_CLI_BANNER": "false",
    }
)


def apply_defaults(environ: MutableMapping[str, str] = os.environ) -> None:
    """Set every variable of `DEFAULTS` that `environ` does not set already (a value the user
    set is kept), then `quiet_tau2()`. Call it before tau2 is imported: tau2 and litellm read
    some of these variables at import."""
    for key, value in DEFAULTS.items():
        environ.setdefault(key, value)
    quiet_tau2()


def quiet_tau2() -> None:
    """Disable the output of tau2's loguru logger in this process (`loguru.logger.enable("tau2")`
    turns it back on). Other loguru users are not affected."""
    from loguru import logger

    logger.disable("tau2")


def child_env(extra: Mapping[str, str] = MappingProxyType({})) -> dict[str, str]:
    """The defaults plus `extra`: the variables to give a child process on top of its own."""
    return {**DEFAULTS, **extra}


def rearm_signal_handlers() -> None:
    """Register this process's Python handlers of SIGINT and SIGTERM again (main thread only).
    Ray's native code can leave SIGTERM at its default disposition underneath the handler
    Python still names (after `ray.shutdown`, and once a signal was delivered after its workers
    started), so a second SIGTERM during a clean stop would kill the process (143)."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            handler = signal.getsignal(sig)
            if handler is not None:
                signal.signal(sig, handler)


@contextlib.contextmanager
def held_signals() -> Iterator[None]:
    """Hold SIGINT and SIGTERM (blocked, not lost) in the main thread while Ray starts or stops,
    then arm this process's handlers again and release them. Threads Ray starts meanwhile inherit
    the blocked mask, so a signal reaches the main thread's handler, never a disposition Ray's
    native code left in place."""
    import signal
    import threading

    held = (signal.SIGINT, signal.SIGTERM)
    main = threading.current_thread() is threading.main_thread()
    if main:
        signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        rearm_signal_handlers()
        if main:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, held)


def ray_shutdown() -> None:
    """`ray.shutdown()` with the signals held (`held_signals`)."""
    import ray

    with held_signals():
        ray.shutdown()


def settle_heap() -> None:
    """Leave every object alive now out of the garbage collector's later full collections
    (`gc.collect()`, then `gc.freeze()`). For a long-lived process of this project (a pool
    worker) once it holds what it keeps for its life (the libraries, the domains' tasks and
    databases): otherwise each full collection walks those ~600,000 objects again, ~0.3 s that
    stalls every episode in flight, about a tenth of the process's CPU while it runs episodes."""
    gc.collect()
    gc.freeze()


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Within the block, the objects alive at its start are left out of garbage collections
    (`gc.freeze`), so a collection during a long build walks what the build allocates, not the
    whole process; undone at the end (`gc.unfreeze`). A process that froze its heap already
    (`settle_heap`) is left as it is."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
