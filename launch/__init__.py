"""Launchers that are not `tau2-rollout` commands: the example AReaL launcher (`python -m launch.areal_train`)."""
