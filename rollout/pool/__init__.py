"""The rollout pool: Ray actors that run TAU2 episodes for trainers and sweeps (see pool.py)."""

from rollout.pool.cluster import RayUnreachable
from rollout.pool.config import RayConfig, RetryConfig
from rollout.pool.dispatch import NoWorkersLeft
from rollout.pool.pool import RolloutPool
from rollout.pool.requests import Endpoint, RolloutRequest, ValidRequest, derive_seed

__all__ = [
    "Endpoint",
    "NoWorkersLeft",
    "RayUnreachable",
    "RayConfig",
    "RetryConfig",
    "RolloutPool",
    "RolloutRequest",
    "ValidRequest",
    "derive_seed",
]
