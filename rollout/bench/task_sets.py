"""`python -m rollout.bench.task_sets [--tasks 4] [--reps 15]`: speed on a task set's own database.

Two figures, printed as JSON:

- P1 on a custom database: the environment side of an episode (bench.py's P1: gold actions,
  zero-latency model, LocalSession) on airline's tasks over a task set's database (airline's
  with one record changed) beside the same tasks over airline's default database, medians of
  interleaved repetitions, and their ratio (target: at most 1.2);
- validate-tasks' rate: tasks replayed and scored per second on every airline, retail and
  telecom base task.

The files are written to a temporary directory from tau2's shipped data.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
from pathlib import Path

SET_NAME = "bench_airline_set"


def write_set(directory: Path) -> dict[str, Path]:
    """airline's base tasks and its database with one user's email changed, as task set files."""
    from tau2.domains.airline.environment import AIRLINE_DB_PATH
    from tau2.registry import registry

    tasks = directory / "airline_tasks.json"
    tasks.write_text(json.dumps([t.model_dump(mode="json") for t in registry.get_tasks_loader("airline")("base")]))
    db = json.loads(Path(AIRLINE_DB_PATH).read_text())
    db["users"]["mei_brown_7075"]["email"] = "changed@example.com"
    db_path = directory / "airline_db.json"
    db_path.write_text(json.dumps(db))
    return {"tasks": tasks, "db": db_path}


def bench_custom_db(tasks: int, reps: int, files: dict[str, Path]) -> dict:
    from rollout.bench.bench import _ours_env_side, episode_config
    from rollout.core.config.schema import TaskSetConfig
    from rollout.env.domains import load_domain
    from rollout.env.task_sets import register_task_sets
    from rollout.scripted import ScriptedServer

    register_task_sets({SET_NAME: TaskSetConfig(domain="airline", tasks=str(files["tasks"]), db=str(files["db"]))})
    ids = load_domain("airline").task_ids()[:tasks]
    times: dict[str, list[float]] = {"airline": [], SET_NAME: []}
    with ScriptedServer("oracle", record=False) as server:
        cfg = episode_config(server.url)
        for name in times:
            asyncio.run(_ours_env_side(cfg, name, ids[0]))  # warm: domain loaded, caches filled
        for _ in range(reps):
            for task_id in ids:
                for name in times:
                    times[name].append(asyncio.run(_ours_env_side(cfg, name, task_id)))
    default, custom = statistics.median(times["airline"]), statistics.median(times[SET_NAME])
    return {
        "default_db_s": round(default, 5),
        "custom_db_s": round(custom, 5),
        "ratio": round(custom / default, 3),
        "episodes": len(ids) * reps,
    }


def bench_validate(directory: Path) -> dict:
    from tau2.registry import registry

    from rollout.env.task_validation import validate_tasks

    out = {}
    for domain in ("airline", "retail", "telecom"):
        path = directory / f"{domain}_base.json"
        path.write_text(json.dumps([t.model_dump(mode="json") for t in registry.get_tasks_loader(domain)("base")]))
        report = validate_tasks(domain, str(path))
        out[domain] = {"tasks": report.replayed, "tasks_per_second": report.tasks_per_second, "counts": report.counts}
    return out


def main(argv=None) -> None:
    from rollout.core.process_env import apply_defaults

    apply_defaults()
    p = argparse.ArgumentParser(prog="python -m rollout.bench.task_sets", description=__doc__)
    p.add_argument("--tasks", type=int, default=4)
    p.add_argument("--reps", type=int, default=15)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        files = write_set(Path(tmp))
        report = {"p1_custom_db": bench_custom_db(args.tasks, args.reps, files), "validate_tasks": bench_validate(Path(tmp))}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
