"""tau2-rollout: TAU2 episodes of OpenAI Agents SDK agents, scored by tau2, for RL.

Importing the package, or any module of it, sets no environment variable and leaves tau2's
logging as it is. A program that uses the library calls
`rollout.core.process_env.apply_defaults()` first thing (offline and quiet; see that module);
the project's own entry points do.
"""

__version__ = "0.2.0"
