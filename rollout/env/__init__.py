"""The environment side: tau2 domains, trajectories, the user simulator, evaluation and the
backends behind `EnvSession` (protocol.py). It never imports the agent side (agent_loop,
episode, areal) or the sweep."""
