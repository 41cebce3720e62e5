"""The scripted model server (test double for the LLM only) and its players.

The names below are loaded on first use (the server imports tau2), so that
`python -m rollout.scripted` can set the process defaults and answer `--help` first.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FAULT_MODES", "Faults", "ScriptedServer"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from rollout.scripted import server

        return getattr(server, name)
    raise AttributeError(f"module 'rollout.scripted' has no attribute '{name}'")
