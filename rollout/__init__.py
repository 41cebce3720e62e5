"""tau2-rollout: TAU2 episodes of OpenAI Agents SDK agents, scored by tau2, for RL.

Importing the package sets three process defaults (only if unset) so that importing tau2
stays offline and quiet: litellm's local cost map (no fetch at import), no `.env`
loading by tau2's import, and tau2's loguru output disabled (it logs whole transcripts
at DEBUG on every step).
"""

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("PYTHON_DOTENV_DISABLED", "1")
os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")

from loguru import logger as _loguru  # noqa: E402  (tau2's logger)

_loguru.disable("tau2")

__version__ = "0.1.0"
