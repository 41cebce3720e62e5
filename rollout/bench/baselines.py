"""tau2's own ways of running the same episodes, for parity tests and the benchmark.

- `gold_script(task, solo)`: the gold action sequence as agent actions (tool calls, or in
  non-solo telecom, requests that the user perform a device action); it lives in
  rollout/scripted/gold.py, with the oracle's play, and is re-exported here.
- `play_in_gym(...)`: tau2's `AgentGymEnv` stepped through an action sequence, its user
  simulator answered by the scripted server over litellm.
- `run_tau2_runner(...)`: `tau2 run` with tau2's ground-truth agent against the scripted
  server (which replays the resolution steps in that agent's prompt).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

from rollout.core.process_env import child_env
from rollout.scripted.endpoints import AGENT_MODEL, USER_MODEL
from rollout.scripted.gold import CLOSING, gold_script

__all__ = ["gold_script", "play_in_gym", "run_tau2_runner"]


def play_in_gym(domain: str, task_id: str, actions: list[dict], *, solo: bool, user_url: str, max_steps: int = 100):
    """tau2's AgentGymEnv reward for an agent that plays `actions`, then closes (solo: `done`).

    Returns (reward, reward_info dict). The gym's user simulator talks to the scripted
    server at `user_url` through litellm, like to any OpenAI endpoint.
    """
    from tau2.gym.gym_agent import AgentGymEnv

    env = AgentGymEnv(
        domain,
        task_id,
        solo_mode=solo,
        max_steps=max_steps,
        user_llm=f"openai/{USER_MODEL}",
        user_llm_args={
            "api_base": user_url,
            "api_key": "unused",
            "temperature": 0.0,
            "extra_headers": {"X-Rollout-Role": "user"},
        },
    )
    env.reset()
    steps = [json.dumps({"name": a["tool"], "arguments": a.get("arguments", {})}) if "tool" in a else a["text"] for a in actions]
    steps.append(json.dumps({"name": "done", "arguments": {}}) if solo else CLOSING)
    for step in steps:
        _, reward, terminated, _, info = env.step(step)
        if terminated:
            return reward, json.loads(info["reward_info"])
    raise RuntimeError(f"gym episode {domain}/{task_id} did not terminate")


def run_tau2_runner(domain: str, task_ids: list[str], *, url: str, concurrency: int, trials: int = 1) -> dict:
    """`tau2 run` (tau2's own thread-pool runner) with its ground-truth agent on the scripted server.

    Returns {"episodes", "window_s", "eps_per_s"}: the window is from the first simulation's
    start to the last one's end, as recorded in tau2's results file. If tau2's run aborts
    (one failed simulation aborts it), eps_per_s is None and "error" says why.
    """
    llm_args = json.dumps({"api_base": url, "api_key": "unused", "temperature": 0.0})
    user_args = json.dumps(
        {"api_base": url, "api_key": "unused", "temperature": 0.0, "extra_headers": {"X-Rollout-Role": "user"}}
    )
    with tempfile.TemporaryDirectory() as out:
        cmd = [
            sys.executable,
            "-m",
            "tau2.cli",
            "run",
            "--domain",
            domain,
            "--agent",
            "llm_agent_gt",
            "--agent-llm",
            f"openai/{AGENT_MODEL}",
            "--agent-llm-args",
            llm_args,
            "--user-llm",
            f"openai/{USER_MODEL}",
            "--user-llm-args",
            user_args,
            "--task-ids",
            *task_ids,
            "--num-trials",
            str(trials),
            "--max-concurrency",
            str(concurrency),
            "--max-retries",
            "0",
            "--save-to",
            "bench",
            "--results-dir",
            out,
            "--log-level",
            "ERROR",
        ]
        env = {**os.environ, **child_env()}
        proc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:  # one failed simulation aborts tau2's run (no --skip-failed-samples)
            return {
                "episodes": 0,
                "window_s": None,
                "eps_per_s": None,
                "error": (proc.stderr or proc.stdout).strip().splitlines()[-1][-300:]
                if (proc.stderr or proc.stdout)
                else "failed",
            }
        results = json.loads((Path(out) / "bench.json").read_text())
    sims = results["simulations"]
    start = min(datetime.fromisoformat(s["start_time"]) for s in sims)
    end = max(datetime.fromisoformat(s["end_time"]) for s in sims)
    window = (end - start).total_seconds()
    return {
        "episodes": len(sims),
        "window_s": window,
        "eps_per_s": len(sims) / window if window > 0 else None,
        "mean_reward": sum(s["reward_info"]["reward"] for s in sims) / len(sims),
    }
