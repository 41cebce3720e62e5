"""Running a sweep on the rollout pool: `prepare(argv)` the config, then `run_sweep(cfg)` it.

The episodes run on the rollout pool (rollout/pool/), which starts or joins Ray, fits the
workers on its CPUs and counts them; each finished episode goes to `<output_dir>/episodes.jsonl`
at once. A rerun with the same output_dir runs what has no record yet and what finally failed
on infrastructure (endpoint, user simulator, environment, timeout, lost worker) the last time;
scored episodes and bad-input failures are kept. At the end: `summary.json`, the resolved
config (`config.yaml`, keys redacted), tau2 Results files (`tau2_results*.json`, see
rollout/sweep/exports.py) and a report (`report/`). Nothing here prints but the live progress
line: `run_sweep` returns what happened (`SweepStart` to `on_start` before any episode runs,
then a `SweepResult`), and the `sweep` command (rollout/commands/sweep.py) prints it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from omegaconf import OmegaConf

from rollout.core.command import parse_args
from rollout.core.config import RolloutConfig, check_key_sources, to_dict
from rollout.core.config.schema import SCRIPTED_AGENT_MODEL, SCRIPTED_USER_MODEL
from rollout.core.failures import InvalidInput
from rollout.pool import RolloutPool, ValidRequest
from rollout.sweep.config import SweepConfig, check_sweep
from rollout.sweep.exports import export_sweep
from rollout.sweep.metrics import summarize
from rollout.sweep.plan import key_of, plan_requests
from rollout.sweep.progress import Progress
from rollout.sweep.records import EPISODES_FILE, EpisodeStore, SweepRecord, iter_records, latest
from rollout.sweep.report import write_report

SMOKE_MAX_TASKS = 3


def prepare(argv: list[str], *, local: bool = True) -> tuple[SweepConfig, bool]:
    """The checked sweep config and whether it is the offline smoke run (no agent endpoint: the
    scripted oracle plays both endpoints, the first `SMOKE_MAX_TASKS` tasks of every domain).

    `argv` is `key=value` overrides, optionally with `--config FILE` (repeatable): YAML files
    merged over the package defaults, before the overrides (e.g. conf/sweep.yaml). `local`
    False (a sweep to be run elsewhere, `submit`): what only the running machine can tell
    (output_dir) is not checked here. The settings of the pool (`ray`,
    `retry`) and each episode are checked by the pool, in `run_sweep`. Raises InvalidInput."""
    cfg = parse_args(argv, SweepConfig, config_files=True)
    smoke = cfg.llm.scripted is None and not cfg.llm.base_url
    if smoke:
        cfg.llm.scripted = "oracle"
        if cfg.max_tasks is None:
            cfg.max_tasks = SMOKE_MAX_TASKS
    if cfg.llm.scripted:  # both endpoints are the scripted server; its address is the run's (see run_sweep)
        cfg.llm.model = cfg.llm.model or SCRIPTED_AGENT_MODEL
        cfg.user_llm.model = SCRIPTED_USER_MODEL
    if cfg.output_dir is None:
        cfg.output_dir = str(Path("runs") / time.strftime("sweep-%Y%m%d-%H%M%S"))
    check_sweep(cfg, local=local)
    return cfg, smoke


@dataclass(frozen=True)
class SweepStart:
    """What a sweep is about to do, its plan checked and its log read, before any episode runs."""

    planned: int
    done: int  # settled in the log already
    to_run: int
    run_again: int  # of `to_run`: failed on infrastructure the last time
    log: Path
    corrupt_lines: int  # lines of the log that are not a record (their episodes run again)
    changed_settings: list[str]  # resuming with different settings for these keys


@dataclass(frozen=True)
class SweepResult:
    """A finished sweep: `summary` (as in summary.json, `summary["run"]` included), the files
    written under `output`, and why no tau2 Results file was written (None: one was)."""

    summary: dict[str, Any]
    output: Path
    files: list[str]
    no_results_file: Optional[str]

    @property
    def planned(self) -> int:
        return self.summary["run"]["episodes_planned"]

    @property
    def scored(self) -> int:
        return self.summary["run"]["episodes_scored"]

    @property
    def all_scored(self) -> bool:
        return self.summary["run"]["all_scored"]


def run_sweep(
    cfg: SweepConfig,
    *,
    episode_config: Optional[RolloutConfig] = None,
    on_start: Optional[Callable[[SweepStart], None]] = None,
    on_record: Optional[Callable[[SweepRun, SweepRecord], None]] = None,
) -> SweepResult:
    """Plan, resume, run and summarize a sweep of `cfg` (as `prepare` returns it).

    `episode_config`: the config the episodes run with, when it is not `cfg.episode_config()`
    (the scripted server's address is only known once it runs: `llm.scripted` needs it);
    `config.yaml` keeps `cfg`. Every episode is checked once, by the pool, and every
    configuration error (InvalidInput) is raised before anything is written and before Ray
    starts, the key sources included (read here, where the sweep's requests are made from: this
    process, or the job's driver on a cluster); the cluster's CPUs are checked once Ray is joined, still before anything is
    written. `on_start(SweepStart)` is called once the log is read; `on_record(run, record)`
    after each episode is written. Raises NoWorkersLeft, RayUnreachable, KeyboardInterrupt."""
    if episode_config is None:
        if cfg.llm.scripted:
            raise InvalidInput(
                f"llm.scripted={cfg.llm.scripted} runs against the scripted server: the sweep command starts it "
                f"(tau2-rollout sweep); a caller of run_sweep passes episode_config pointed at a running one"
            )
        episode_config = cfg.episode_config()
    check_key_sources(cfg)  # read where the sweep's requests are made from: here, or the job's driver
    progress: Optional[Progress] = None
    pool = sweep_pool(cfg, episode_config, on_retry=lambda: progress and progress.retry())
    run = SweepRun(pool)
    try:
        planned = pool.check(plan_requests(cfg))  # InvalidInput before Ray starts and before anything is written
        output = Path(cfg.output_dir)
        last, corrupt = latest(output / EPISODES_FILE)  # read-only, one pass (not one per planned episode)
        todo = [v for v in planned if not last.get(key_of(v.request), (0, False))[1]]
        again = sum(key_of(v.request) in last for v in todo)
        if on_start is not None:
            start = SweepStart(
                len(planned),
                len(planned) - len(todo),
                len(todo),
                again,
                output / EPISODES_FILE,
                corrupt,
                _changed_settings(cfg, output),
            )
            on_start(start)
        started, episodes_s = time.monotonic(), None
        if todo:  # Ray joined and the workers fitted on its CPUs before anything is written
            pool.start(sorted({v.episode.domain for v in todo}), episodes=len(todo))
        with EpisodeStore(output, transcripts=cfg.transcripts) as store:
            _save_config(cfg, output)
            if todo:
                progress = Progress(len(planned), done=len(planned) - len(todo), enabled=cfg.progress)
                try:
                    _run(pool, store, todo, progress, run, on_record)
                finally:
                    progress.close()
                episodes_s = time.monotonic() - progress.started
        wall = time.monotonic() - started
        run.close()
    finally:
        pool.close()
    return _finish(cfg, output, planned, run, again, wall, episodes_s, corrupt)


def sweep_pool(cfg: SweepConfig, episode_config: Optional[RolloutConfig] = None, on_retry=None) -> RolloutPool:
    """The rollout pool of a sweep (not started: no Ray yet), its `ray` and `retry` settings checked."""
    return RolloutPool(episode_config or cfg.episode_config(), ray=cfg.ray, retry=cfg.retry, seed=cfg.seed, on_retry=on_retry)


class SweepRun:
    """What `on_record(run, record)` sees of a sweep: records written so far, and the pool's
    workers (`workers`, `replaced_workers`, `lost_slots`; once the pool is closed, the counts it
    ended with)."""

    WORKER_COUNTS = ("workers", "replaced_workers", "lost_slots")

    def __init__(self, pool: RolloutPool):
        self.pool = pool
        self.written = 0
        self.ended_with: dict = {}

    def close(self) -> None:
        """Keep the worker counts (the pool is closed by its owner)."""
        if self.pool.dispatcher is not None:
            self.ended_with = {name: getattr(self.pool.dispatcher, name) for name in self.WORKER_COUNTS}

    def __getattr__(self, name):
        if name in SweepRun.WORKER_COUNTS:
            dispatcher = self.pool.dispatcher
            return getattr(dispatcher, name) if dispatcher is not None else self.ended_with.get(name)
        raise AttributeError(name)


def _run(pool: RolloutPool, store: EpisodeStore, todo: list[ValidRequest], progress: Progress, run: SweepRun, on_record) -> None:
    """Run `todo` on the pool, each finished episode written, counted and shown."""
    progress.started = time.monotonic()
    for trajectory in pool.stream(todo):
        record = SweepRecord.from_trajectory(trajectory)
        store.append(record)
        run.written += 1
        progress.record(record)
        if on_record:
            on_record(run, record)


def _finish(
    cfg, output: Path, planned: list[ValidRequest], run: SweepRun, again: int, wall: float, episodes_s, corrupt
) -> SweepResult:
    """Summarize the planned episodes' outcomes (streamed from the log) and write the summary,
    the tau2 Results files and the report."""
    keys = {key_of(v.request) for v in planned}

    def finished():  # constant memory: one pass over the log per reader
        return (r for r in iter_records(output) if r.key in keys)

    summary = summarize(finished(), num_samples=cfg.num_samples)
    scored, written = summary["all"]["scored"], run.written
    summary["run"] = {
        "episodes_planned": len(planned),
        "episodes_run": written,
        "episodes_run_again": again,
        "episodes_scored": scored,
        "all_scored": scored == len(planned),
        "wall_s": round(wall, 3),
        "episodes_s": round(episodes_s, 3) if episodes_s else None,
        "episodes_per_s": round(written / episodes_s, 4) if written and episodes_s else None,
        "corrupt_lines_skipped": corrupt,
        "workers_replaced": run.replaced_workers or 0,
        "slots_lost": run.lost_slots or 0,
    }
    (output / "summary.json").write_text(json.dumps(summary, indent=2))
    exported, why_not = export_sweep(output, finished(), to_dict(cfg))
    page = write_report([output]) if summary["all"]["episodes"] else None
    files = ["episodes.jsonl", "summary.json", *(p.name for p in exported), *([f"report/{page.name}"] if page else [])]
    return SweepResult(summary, output, files, why_not)


def _save_config(cfg: SweepConfig, output: Path) -> None:
    """Write the resolved config (keys redacted), unless a sweep of this directory wrote one."""
    path = output / "config.yaml"
    if not path.exists():
        path.write_text(OmegaConf.to_yaml(_saved(cfg)))


def _changed_settings(cfg: SweepConfig, output: Path) -> list[str]:
    """Resuming: the keys whose settings differ from the saved config's (read-only; [] for a new sweep)."""
    path = output / "config.yaml"
    if not path.exists():
        return []
    previous, current = OmegaConf.to_container(OmegaConf.load(path)), _saved(cfg)
    return sorted(k for k in set(previous) | set(current) if k not in ("ray", "progress") and previous.get(k) != current.get(k))


def _saved(cfg: SweepConfig) -> dict:
    current = to_dict(cfg)
    current.pop("output_dir", None)
    return current
