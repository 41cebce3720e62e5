"""`tau2-rollout episode`: the offline check and its errors."""

import os
import subprocess
import sys


def run_cli(*args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "TAU2_USER"))}
    return subprocess.run([sys.executable, "-m", "rollout", "episode", *args], capture_output=True, text=True, env=env, timeout=300)


def test_offline_oracle_check_prints_reward_one():
    p = run_cli("--domain", "airline", "--task_id", "12", "--scripted", "oracle")
    assert p.returncode == 0, p.stderr
    assert "reward: 1.0  termination: user_stop" in p.stdout
    assert "assistant: [calls] update_reservation_baggages" in p.stdout  # the short transcript


def test_offline_noop_solo_and_json():
    import json

    p = run_cli("--domain", "mock", "--task_id", "create_task_1", "--scripted", "noop", "--solo", "--json")
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout)
    assert result["solo"] and result["termination"] == "agent_stop" and result["reward"] == 0.0


def test_unknown_domain_and_task_are_clear_errors():
    p = run_cli("--domain", "banking", "--task_id", "1", "--scripted", "oracle")
    assert p.returncode == 2 and "unknown domain 'banking'; valid domains: airline, retail, telecom, mock" in p.stderr
    p = run_cli("--domain", "retail", "--task_id", "5000", "--scripted", "oracle")
    assert p.returncode == 2 and "unknown task_id '5000' for domain 'retail'" in p.stderr
