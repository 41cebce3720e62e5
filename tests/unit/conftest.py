"""Unit tests run with no Ray connected: a module of tests/unit starts with this process
disconnected from any Ray an earlier test directory left running (the product's behaviour
differs when it is connected: it joins that Ray and fits workers on its CPUs)."""

import sys

import pytest


@pytest.fixture(scope="module", autouse=True)
def _no_ray():
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        from rollout.core.process_env import ray_shutdown

        ray_shutdown()
    yield
