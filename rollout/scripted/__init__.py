"""The scripted model server (test double for the LLM only) and its players."""

from rollout.scripted.server import FAULT_MODES, Faults, ScriptedServer

__all__ = ["FAULT_MODES", "Faults", "ScriptedServer"]
