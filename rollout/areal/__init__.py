"""The AReaL side: the `Tau2Agent` workflow, AEnvironment's `run_agent_return_reward`, data rows."""

from rollout.areal.rows import DATA_KEYS, spec_from_data
from rollout.areal.workflow import Tau2Agent, run_agent_return_reward

__all__ = ["DATA_KEYS", "Tau2Agent", "run_agent_return_reward", "spec_from_data"]
