"""`tau2-rollout episode`: the offline check, the sweep's key=value overrides, and its errors."""

import json
import os
import subprocess
import sys


def run_cli(*args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "TAU2_USER"))}
    return subprocess.run([sys.executable, "-m", "rollout", "episode", *args], capture_output=True, text=True, env=env, timeout=300)


def test_offline_oracle_check_prints_reward_one():
    p = run_cli("domain=airline", "task_id=12", "llm.scripted=oracle")
    assert p.returncode == 0, p.stderr
    assert "reward: 1.0  termination: user_stop" in p.stdout
    assert "assistant: [calls] update_reservation_baggages" in p.stdout  # the short transcript


def test_offline_noop_solo_and_json():
    p = run_cli("domain=mock", "task_id=create_task_1", "llm.scripted=noop", "solo=true", "json=true")
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout)
    assert result["solo"] and result["termination"] == "agent_stop" and result["reward"] == 0.0


def test_sweep_overrides_apply(tmp_path):
    """The same keys as a sweep: episode limits, sampling presets, a --config file."""
    conf = tmp_path / "c.yaml"
    conf.write_text("episode:\n  max_steps: 3\n")
    p = run_cli("--config", str(conf), "domain=airline", "task_id=12", "llm.scripted=oracle", "sampling=eval", "json=true")
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout)
    assert result["termination"] == "max_steps" and result["steps"] == 3 and result["reward"] == 0.0


def test_unknown_domain_task_and_keys_are_clear_errors():
    p = run_cli("domain=banking", "task_id=1", "llm.scripted=oracle")
    assert p.returncode == 2 and "unknown domain 'banking'; valid domains: airline, retail, telecom, mock" in p.stderr
    p = run_cli("domain=retail", "task_id=5000", "llm.scripted=oracle")
    assert p.returncode == 2 and "unknown task_id '5000' for domain 'retail'" in p.stderr
    p = run_cli("domain=retail", "task_id=1", "llm.scripted=oracel")
    assert p.returncode == 2 and "llm.scripted='oracel' is not one of oracle, noop" in p.stderr
    p = run_cli("domain=retail", "task_id=1", "episode.max_step=3")
    assert p.returncode == 2 and "unknown key 'episode.max_step', did you mean 'max_steps'" in p.stderr
    p = run_cli("domain=retail", "llm.scripted=oracle")
    assert p.returncode == 2 and "task_id=... is required" in p.stderr
