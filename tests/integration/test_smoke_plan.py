"""The README's main command, `tau2-rollout sweep` with nothing configured, plans the offline smoke sweep."""

import pytest

from rollout.core.config import CONFIG_ENV_VARS

pytestmark = pytest.mark.integration


def test_nothing_configured_is_the_scripted_smoke_sweep_of_every_domain(monkeypatch, tmp_path):
    from rollout.pool import RolloutPool
    from rollout.sweep.plan import plan_requests
    from rollout.sweep.run import SMOKE_MAX_TASKS, prepare

    for var in (*CONFIG_ENV_VARS, "OPENAI_API_KEY", "TAU2_USER_LLM_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    cfg, smoke = prepare([f"output_dir={tmp_path / 'run'}"])
    episodes = [v.episode for v in RolloutPool(cfg.episode_config(), seed=cfg.seed).check(plan_requests(cfg))]
    assert smoke and cfg.llm.scripted == "oracle"
    assert {e.domain for e in episodes} == {"airline", "retail", "telecom", "mock"}
    assert len(episodes) == 4 * SMOKE_MAX_TASKS and not any(e.solo for e in episodes if e.domain in ("airline", "retail"))
