"""Export a sweep to tau2's own `Results` format, readable by `tau2 view` and `tau2 evaluate-trajs`.

tau2's Results files hold one domain and one mode (solo is read from the agent/user
implementations), so `export_sweep(output_dir)` writes one file per (domain, mode):
`tau2_results_<domain>[_solo].json`, and also `tau2_results.json` when there is only one.
Scored episodes become tau2 SimulationRuns (messages, reward_info, termination, trial =
sample, seed). A finally failed episode is written the way `tau2 run --skip-failed-samples`
writes a simulation that raised: no messages, reward 0.0, `skipped: true`, termination
agent_error (its failure class and message in `reward_info.info.failure`), so tau2's own
`compute_metrics` on the file gives the summary's `tau2_counting` figures. The records are
streamed once: simulations are spooled to a part file per group, so memory stays flat. A
scored episode without its messages (`transcripts=false`, now or in an earlier run of the same
directory) cannot be a tau2 simulation: then no Results file is written at all, and the reason
is returned, rather than a file that would hold some of the episodes.

A task set's file names the set as its environment's domain (`info.environment_info.domain_name`:
the name tau2's registry builds its environment by, over the set's database) and holds its
tasks, so tau2's `evaluate-trajs` re-scores it wherever the set is registered
(`rollout.env.task_sets.register_task_sets`); a tau2 task set without an environment of its own
(telecom_full) names the domain it runs on.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Optional

from rollout.env.domains import environment_name, load_domain
from rollout.env.evaluation import simulation_run
from rollout.sweep.records import SweepRecord

RESULTS_FILE = "tau2_results.json"


def simulation_of(r: SweepRecord):
    """A record as tau2's SimulationRun: a scored episode's trajectory, or a failed episode as
    tau2's runner records a skipped sample."""
    from tau2.data_model.simulation import RewardInfo, TerminationReason
    from tau2.utils.utils import get_now

    duration = float(r.durations.get("total_s", 0.0))
    if not r.ok:  # as tau2's runner skips a failed sample: start = end = now, duration 0.0
        now = get_now()
        return simulation_run(
            run_id=f"{r.task_id}_{r.sample}_failed",
            task_id=r.task_id,
            messages=[],
            termination=TerminationReason.AGENT_ERROR,
            start_time=now,
            end_time=now,
            duration=0.0,
            seed=r.seed,
            trial=r.sample,
            skipped=True,
            reward_info=RewardInfo(reward=0.0, info={"failure": r.failure.to_dict()}),
        )
    messages = r.messages
    return simulation_run(
        run_id=f"{r.domain}/{r.task_id}/{r.sample}",
        task_id=r.task_id,
        messages=messages,
        termination=r.termination,
        start_time=messages[0].get("timestamp") or "" if messages else "",
        end_time=messages[-1].get("timestamp") or "" if messages else "",
        duration=duration,
        seed=r.seed,
        trial=r.sample,
        reward_info=r.reward_info,
    )


def results_header(*, domain: str, solo: bool, task_ids: Iterable[str], num_trials: int, config: Optional[dict] = None):
    """tau2 `Results` of one domain and mode with its info and tasks, and no simulations yet."""
    from tau2.data_model.simulation import AgentInfo, Info, Results, UserInfo
    from tau2.user.user_simulator import get_global_user_sim_guidelines

    assets = load_domain(domain)
    config = config or {}
    env = assets.new_environment(solo)
    llm, user = config.get("llm", {}), config.get("user_llm", {})
    info = Info(
        git_commit=_git_commit(),
        num_trials=int(config.get("num_samples") or num_trials),
        max_steps=int(config.get("episode", {}).get("max_steps", 200)),
        max_errors=int(config.get("episode", {}).get("max_errors", 10)),
        user_info=UserInfo(
            implementation="dummy_user" if solo else "user_simulator",
            llm=user.get("model"),
            llm_args=None if solo else _sent({"temperature": user.get("temperature")}),
            global_simulation_guidelines=None if solo else get_global_user_sim_guidelines(use_tools=env.user_tools is not None),
        ),
        agent_info=AgentInfo(
            implementation="llm_agent_solo" if solo else "llm_agent",
            llm=llm.get("model"),
            llm_args=_sent(config.get("sampling") or {}),
        ),
        environment_info=env.get_info().model_copy(update={"domain_name": environment_name(domain)}),
        seed=config.get("seed"),
    )
    return Results(info=info, tasks=[assets.task(t) for t in dict.fromkeys(task_ids)], simulations=[])


def _sent(sampling: dict) -> Optional[dict]:
    """The sampling settings a request carries, as tau2's `llm_args`: the ones set (null ones
    are not sent), `extra_body`'s fields among them; not the preset's name or `send_seed`
    (the seed is the simulation's own); None when nothing is sent."""
    args = {k: v for k, v in sampling.items() if k not in ("preset", "send_seed", "extra_body") and v is not None}
    args.update(sampling.get("extra_body") or {})
    return args or None


class _GroupWriter:
    """Simulations of one (domain, mode), spooled to a part file as they stream by."""

    def __init__(self, path: Path):
        self.path, self.part = path, path.with_name(f".{path.name}.part")
        self.fh = open(self.part, "w", encoding="utf-8")
        self.task_ids: dict[str, None] = {}
        self.trials, self.count = 1, 0

    def add(self, r: SweepRecord) -> None:
        self.fh.write((",\n" if self.count else "") + simulation_of(r).model_dump_json(indent=4))
        self.task_ids[r.task_id] = None
        self.trials, self.count = max(self.trials, r.sample + 1), self.count + 1

    def finish(self, domain: str, solo: bool, config: Optional[dict]) -> None:
        """Write the Results file: tau2's own header, then the spooled simulations."""
        self.fh.close()
        head = results_header(
            domain=domain, solo=solo, task_ids=self.task_ids, num_trials=self.trials, config=config
        ).model_dump_json(indent=4)
        tail = '"simulations": []\n}'
        if not head.endswith(tail):
            raise RuntimeError(f"unexpected tau2 Results layout (ends with {head[-40:]!r})")
        with open(self.path, "w", encoding="utf-8") as out, open(self.part, encoding="utf-8") as part:
            out.write(head[: -len(tail)] + '"simulations": [\n')
            shutil.copyfileobj(part, out)
            out.write("\n]\n}")
        self.part.unlink()


def export_sweep(
    output_dir: str | Path, records: Iterable[SweepRecord], config: Optional[dict] = None
) -> tuple[list[Path], Optional[str]]:
    """Write the tau2 Results files of a sweep (see module doc), streaming `records` once;
    (their paths, None), or ([], why no file was written)."""
    output_dir = Path(output_dir)
    groups: dict[tuple[str, bool], _GroupWriter] = {}
    untranscribed = 0
    try:
        for r in records:
            if r.ok and not r.messages:
                untranscribed += 1
            elif not untranscribed:
                key = (r.domain, r.solo)
                if key not in groups:
                    groups[key] = _GroupWriter(output_dir / f"tau2_results_{r.domain}{'_solo' if r.solo else ''}.json")
                groups[key].add(r)
        paths = []
        if not untranscribed:
            for (domain, solo), writer in sorted(groups.items()):
                writer.finish(domain, solo, config)
                paths.append(writer.path)
    finally:
        for writer in groups.values():
            writer.fh.close()
            writer.part.unlink(missing_ok=True)
    if untranscribed:
        return [], (
            f"{untranscribed} scored episode(s) have no transcript (transcripts=false): tau2's format needs "
            f"every simulation's messages"
        )
    if len(paths) == 1:  # the one file under tau2's default name too (a hard link: no second copy)
        alias = output_dir / RESULTS_FILE
        alias.unlink(missing_ok=True)
        try:
            os.link(paths[0], alias)
        except OSError:
            shutil.copyfile(paths[0], alias)
        paths.append(alias)
    return paths, None


def _git_commit() -> str:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
            ).stdout.strip()
            or "unknown"
        )
    except OSError:
        return "unknown"
