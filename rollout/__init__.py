"""tau2-rollout: TAU2 episodes of OpenAI Agents SDK agents, scored by tau2, for RL.

Importing the package applies the process defaults of `rollout.core.process_env` (only where
unset) so that importing tau2 stays offline and quiet, and disables tau2's loguru output
(it logs whole transcripts at DEBUG on every step).
"""

from rollout.core.process_env import apply_defaults

apply_defaults()

from loguru import logger as _loguru  # noqa: E402  (tau2's logger)

_loguru.disable("tau2")

__version__ = "0.2.0"
