"""`tau2-rollout bench`: the rollout system measured against tau2's own runner and gym."""
