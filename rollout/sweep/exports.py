"""Export a sweep to tau2's own `Results` format, readable by `tau2 view` and `tau2 evaluate-trajs`.

tau2's Results files hold one domain and one mode (solo is read from the agent/user
implementations), so `export_sweep(output_dir)` writes one file per (domain, mode):
`tau2_results_<domain>[_solo].json`, and also `tau2_results.json` when there is only one.
Scored episodes become tau2 SimulationRuns (messages, reward_info, termination, trial =
sample, seed); episodes that failed for an infrastructure reason have no trajectory and
are left out (they are in episodes.jsonl with their failure class).
"""

from __future__ import annotations

import subprocess
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Optional

from rollout.env.domains import load_domain
from rollout.sweep.records import SweepRecord

RESULTS_FILE = "tau2_results.json"


def to_tau2_results(records: list[SweepRecord], *, domain: str, solo: bool, config: Optional[dict] = None):
    """tau2 `Results` for the scored records of one domain and mode."""
    from tau2.data_model.simulation import AgentInfo, Info, Results, SimulationRun, UserInfo
    from tau2.user.user_simulator import get_global_user_sim_guidelines

    assets = load_domain(domain)
    config = config or {}
    env = assets.new_environment(solo)
    sims, task_ids = [], []
    for r in records:
        messages = r.messages
        sims.append(SimulationRun(
            id=f"{domain}/{r.task_id}/{r.sample}",
            task_id=r.task_id,
            start_time=messages[0].get("timestamp") or "" if messages else "",
            end_time=messages[-1].get("timestamp") or "" if messages else "",
            duration=float(r.durations.get("total_s", 0.0)),
            termination_reason=r.termination,
            reward_info=r.reward_info,
            messages=messages,
            trial=r.sample,
            seed=r.seed,
        ))
        task_ids.append(r.task_id)
    llm, user = config.get("llm", {}), config.get("user_llm", {})
    info = Info(
        git_commit=_git_commit(),
        num_trials=int(config.get("num_samples") or max((s.trial or 0) + 1 for s in sims) if sims else 1),
        max_steps=int(config.get("episode", {}).get("max_steps", 200)),
        max_errors=int(config.get("episode", {}).get("max_errors", 10)),
        user_info=UserInfo(implementation="dummy_user" if solo else "user_simulator", llm=user.get("model"),
                           llm_args={"temperature": user.get("temperature")} if not solo else None,
                           global_simulation_guidelines=None if solo else get_global_user_sim_guidelines(use_tools=env.user_tools is not None)),
        agent_info=AgentInfo(implementation="llm_agent_solo" if solo else "llm_agent", llm=llm.get("model"),
                             llm_args={k: v for k, v in (config.get("sampling") or {}).items() if k != "preset"} or None),
        environment_info=env.get_info(),
        seed=config.get("seed"),
    )
    tasks = [assets.task(t) for t in dict.fromkeys(task_ids)]
    return Results(info=info, tasks=tasks, simulations=sims)


def export_sweep(output_dir: str | Path, records: Iterable[SweepRecord], config: Optional[dict] = None) -> list[Path]:
    """Write the tau2 Results files of a sweep (see module doc); returns their paths."""
    output_dir = Path(output_dir)
    groups: dict[tuple[str, bool], list[SweepRecord]] = defaultdict(list)
    for r in records:
        if r.ok and r.messages:
            groups[(r.domain, r.solo)].append(r)
    paths = []
    for (domain, solo), recs in sorted(groups.items()):
        path = output_dir / f"tau2_results_{domain}{'_solo' if solo else ''}.json"
        to_tau2_results(recs, domain=domain, solo=solo, config=config).save(path)
        paths.append(path)
    if len(paths) == 1:
        (output_dir / RESULTS_FILE).write_text(paths[0].read_text())
        paths.append(output_dir / RESULTS_FILE)
    return paths


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except OSError:
        return "unknown"
