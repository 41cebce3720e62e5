"""`tau2-rollout sweep [--config FILE ...] [key=value ...]`: run a sweep of TAU2 episodes on Ray.

With no agent endpoint configured this is the offline smoke sweep (local Ray, tau2
in-process, the built-in scripted oracle, the first 3 tasks of every domain). With
`llm.base_url=...` (and a user simulator endpoint) it is a real sweep. The episodes run on the
rollout pool (rollout/pool/); each finished one goes to `<output_dir>/episodes.jsonl` at once.
A rerun with the same output_dir runs what has no record yet and what finally failed on
infrastructure (endpoint, user simulator, environment, timeout, lost worker) the last time;
scored episodes and bad-input failures are kept. At the end: `summary.json`, the resolved
config (`config.yaml`, keys redacted), tau2 Results files (`tau2_results*.json`, see
rollout/sweep/exports.py), a report (`report/`) and a table.

Keys: every key of rollout/defaults/defaults.yaml and sweep.yaml (`domains`, `split`,
`task_ids`, `max_tasks`, `num_samples`, `seed`, `output_dir`, `transcripts`, `progress`,
`llm.*`, `user_llm.*`, `sampling`, `episode.*`, `env.*`, `ray.*`, `retry.*`); `--config FILE`
(repeatable) merges YAML files over the package defaults, under the key=value items (e.g.
conf/sweep.yaml).

Exit status:
  0    every planned episode is scored;
  1    no Ray worker could run, or the Ray cluster cannot be reached (finished episodes kept);
  2    bad input: one line naming the key, the value and what is valid; nothing started,
       nothing written;
  3    the sweep ran, but some planned episodes are not scored (finally failed: rerun with the
       same output_dir to retry the infrastructure failures; bad-input failures stay);
  130  interrupted by Ctrl-C or SIGTERM (finished episodes kept, in-flight ones cancelled).
"""

from __future__ import annotations

import dataclasses
import json
import math
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Optional

from omegaconf import OmegaConf

from rollout.core.command import parse_args
from rollout.core.config import check_key_sources, to_dict
from rollout.core.process_env import held_signals, rearm_signal_handlers
from rollout.pool import NoWorkersLeft, RolloutPool
from rollout.pool.checks import check_requests
from rollout.pool.config import check_fits
from rollout.scripted.endpoints import AGENT_MODEL, USER_MODEL, pointed_at
from rollout.sweep.config import SweepConfig, check_sweep
from rollout.sweep.exports import export_sweep
from rollout.sweep.metrics import format_table, summarize
from rollout.sweep.plan import key_of, plan_requests
from rollout.sweep.progress import Progress
from rollout.sweep.records import EpisodeStore, SweepRecord, iter_records, peek_settled
from rollout.sweep.report import write_report

SMOKE_MAX_TASKS = 3


def prepare(argv: list[str], *, local: bool = True) -> tuple[SweepConfig, bool]:
    """The validated sweep config and whether it is the offline smoke run.

    `argv` is `key=value` overrides, optionally with `--config FILE` (repeatable): YAML files
    merged over the package defaults, before the overrides (e.g. conf/sweep.yaml). `local`
    False (a sweep to be run elsewhere, `submit`): what only the running machine can tell
    (output_dir, its CPUs) is not checked here."""
    cfg = parse_args(argv, SweepConfig, config_files=True)
    smoke = cfg.llm.scripted is None and not cfg.llm.base_url
    if smoke:
        cfg.llm.scripted = "oracle"
        if cfg.max_tasks is None:
            cfg.max_tasks = SMOKE_MAX_TASKS
    if cfg.llm.scripted:  # both endpoints are the scripted server; its address is filled in once it is up
        cfg.llm.model = cfg.llm.model or AGENT_MODEL
        cfg.user_llm.model = USER_MODEL
    if cfg.output_dir is None:
        cfg.output_dir = str(Path("runs") / time.strftime("sweep-%Y%m%d-%H%M%S"))
    check_sweep(cfg, local=local)
    return cfg, smoke


def run_sweep(cfg: SweepConfig, *, smoke: bool = False, on_record=None, out=None) -> dict:
    """Plan, resume, run and summarize a sweep. Returns the summary (also written to disk);
    `summary["run"]["all_scored"]` says whether every planned episode is scored.

    Every configuration error (InvalidInput) is raised before Ray starts and before anything
    is written, the key sources included (read here, where the sweep's requests are made from:
    this process, or the job's driver on a cluster); a cluster's resources are checked right
    after connecting, still before anything is written."""
    out = out or sys.stdout
    check_sweep(cfg)
    check_key_sources(cfg)
    specs = check_requests(plan_requests(cfg), cfg.episode_config(), cfg.seed)  # InvalidInput before Ray starts
    output = Path(cfg.output_dir)
    settled = peek_settled(output)  # one pass over the log (not one per planned episode)
    if smoke:
        print(
            f"smoke sweep: no llm.base_url set -> built-in scripted {cfg.llm.scripted} model, "
            f"first {cfg.max_tasks} tasks per domain (set llm.base_url=... for a real sweep)",
            file=out,
        )
    needed = any(key_of(s.request) not in settled for s in specs)
    with _RaySession(cfg, needed=needed) as session, EpisodeStore(output, transcripts=cfg.transcripts) as store:
        if store.corrupt_lines:
            print(
                f"warning: skipped {store.corrupt_lines} corrupt line(s) in {store.path} (not a JSON episode "
                f"record); their episodes are run again",
                file=out,
            )
        _save_config(cfg, output, out)
        settled, failed_before = store.settled_keys(), store.unsettled_keys()
        todo = [s for s in specs if key_of(s.request) not in settled]
        again = sum(key_of(s.request) in failed_before for s in todo)
        print(
            f"{len(specs)} episodes planned, {len(specs) - len(todo)} already done in {store.path}, {len(todo)} to run"
            + (f" ({again} of them failed on infrastructure before and are run again)" if again else ""),
            file=out,
            flush=True,
        )
        started = time.monotonic()
        ran, episodes_s = session.run(store, todo, len(specs), on_record) if todo else (None, None)
        written = ran.written if ran else 0
        wall = time.monotonic() - started
    planned = {key_of(s.request) for s in specs}

    def finished():  # the planned episodes' outcomes, streamed from the log (constant memory)
        return (r for r in iter_records(output) if r.key in planned)

    summary = summarize(finished(), num_samples=cfg.num_samples)
    scored = summary["all"]["scored"]
    summary["run"] = {
        "episodes_planned": len(specs),
        "episodes_run": written,
        "episodes_run_again": again,
        "episodes_scored": scored,
        "all_scored": scored == len(specs),
        "wall_s": round(wall, 3),
        "episodes_s": round(episodes_s, 3) if episodes_s else None,
        "episodes_per_s": round(written / episodes_s, 4) if written and episodes_s else None,
        "corrupt_lines_skipped": store.corrupt_lines,
        "workers_replaced": ran.replaced_workers if ran else 0,
        "slots_lost": ran.lost_slots if ran else 0,
    }
    (output / "summary.json").write_text(json.dumps(summary, indent=2))
    print(format_table(summary, episodes_per_s=summary["run"]["episodes_per_s"]), file=out)
    exported, why_not = export_sweep(output, finished(), to_dict(cfg))
    if why_not:
        print(f"no tau2 Results file: {why_not}", file=out)
    page = write_report([output]) if summary["all"]["episodes"] else None
    files = ["episodes.jsonl", "summary.json", *(p.name for p in exported), *([f"report/{page.name}"] if page else [])]
    print(f"results: {output}/ {', '.join(files)}", file=out, flush=True)
    if not summary["run"]["all_scored"]:
        failures = ", ".join(f"{c}={n}" for c, n in summary["all"]["failures"].items())
        print(
            f"{len(specs) - scored} of {len(specs)} planned episodes are not scored ({failures}); rerun with the same "
            f"output_dir to retry the infrastructure failures",
            file=out,
            flush=True,
        )
    return summary


class RayUnreachable(RuntimeError):
    """`ray.address` names a head this process cannot reach."""


class _RaySession:
    """The scripted server (if any) and Ray, for one sweep; a cluster's CPUs are checked on entry."""

    def __init__(self, cfg: SweepConfig, needed: bool):
        self.cfg, self.needed = cfg, needed
        self.server, self.started_ray = None, False

    def __enter__(self) -> _RaySession:
        if not self.needed:
            return self
        import ray

        cfg = self.cfg
        try:
            if cfg.llm.scripted:
                from rollout.scripted import ScriptedServer

                self.server = ScriptedServer(cfg.llm.scripted, record=False).start()
            if not ray.is_initialized():
                _init_ray(cfg)
                self.started_ray = True
            cpus = ray.cluster_resources().get("CPU", 0)
            check_fits(cfg.ray, cpus, f"the Ray cluster has {cpus:g} CPUs in total")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.started_ray:
            from rollout.core.process_env import ray_shutdown

            ray_shutdown()
            self.started_ray = False
        if self.server is not None:
            self.server.stop()
            self.server = None

    def run(self, store: EpisodeStore, todo, total: int, on_record) -> tuple[SweepRun, Optional[float]]:
        """Run `todo` on the rollout pool; (the run, seconds from the first dispatch to the end)."""
        cfg = self.cfg
        progress = Progress(total, done=total - len(todo), enabled=cfg.progress)
        episode_cfg = cfg.episode_config()
        if self.server is not None:  # the scripted server's address is this run's, not the saved config's
            episode_cfg = pointed_at(episode_cfg, self.server.url)
        ray_cfg = dataclasses.replace(cfg.ray, num_workers=_num_workers(cfg, len(todo)))
        pool = RolloutPool(episode_cfg, ray=ray_cfg, retry=cfg.retry, seed=cfg.seed, on_retry=progress.retry)
        run = SweepRun(pool)
        try:
            pool.start(sorted({s.episode.domain for s in todo}))  # worker start-up is not episode time
            rearm_signal_handlers()
            started = time.monotonic()
            progress.started = started
            for trajectory in pool.stream(todo):
                record = SweepRecord.from_trajectory(trajectory)
                store.append(record)
                run.written += 1
                progress.record(record)
                if on_record:
                    on_record(run, record)
            return run, time.monotonic() - started
        finally:
            progress.close()
            run.close()


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
        """Keep the worker counts, then close the pool."""
        if self.pool.dispatcher is not None:
            self.ended_with = {name: getattr(self.pool.dispatcher, name) for name in self.WORKER_COUNTS}
        self.pool.close()

    def __getattr__(self, name):
        if name in SweepRun.WORKER_COUNTS:
            dispatcher = self.pool.dispatcher
            return getattr(dispatcher, name) if dispatcher is not None else self.ended_with.get(name)
        raise AttributeError(name)


def _init_ray(cfg: SweepConfig) -> None:
    import ray

    # The workers' environment comes with each actor (pool/worker.py start_workers), which
    # also works inside a Ray job, whose own runtime env a driver-level one may not override.
    if cfg.ray.address:
        _check_reachable(cfg.ray.address)
    with held_signals():  # Ray's threads start with INT and TERM blocked: they reach the main thread
        if cfg.ray.address:
            ray.init(address=cfg.ray.address)
        else:
            ray.init(
                address="local",
                num_cpus=cfg.ray.num_cpus,
                include_dashboard=False,
                object_store_memory=cfg.ray.object_store_mb * 2**20,
            )
    _install_stop_handlers()  # ray.init installs its own SIGTERM handler (sys.exit)


def _check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """A `host:port` head must answer a TCP connect within `timeout_s` (Ray itself retries for
    minutes). `auto` and `ray://` addresses are left to Ray."""
    host, sep, port = address.rpartition(":")
    if not sep or "://" in address or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise RayUnreachable(f"the Ray head at ray.address={address} cannot be reached: {type(e).__name__}: {e}") from None


def _num_workers(cfg: SweepConfig, episodes: int) -> int:
    import ray

    if cfg.ray.num_workers is not None:
        return cfg.ray.num_workers
    cpus = ray.cluster_resources().get("CPU", 1)
    by_cpu = max(1, int(cpus // cfg.ray.cpus_per_worker))
    return max(1, min(by_cpu, math.ceil(episodes / cfg.ray.slots_per_worker)))


def _install_stop_handlers() -> None:
    """SIGINT and SIGTERM (`ray job stop`) both raise KeyboardInterrupt once; a second
    signal during the clean stop is ignored, so the stop completes without a traceback.
    Both are armed again once the workers started and on each signal (`rearm_signal_handlers`)."""
    if threading.current_thread() is not threading.main_thread():
        return
    stopping = []

    def handler(signum, frame):
        rearm_signal_handlers()
        if stopping:
            return
        stopping.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _save_config(cfg: SweepConfig, output: Path, out) -> None:
    """Write the resolved config (keys redacted); warn when resuming with different settings."""
    path = output / "config.yaml"
    current = to_dict(cfg)
    current.pop("output_dir", None)
    if path.exists():
        previous = OmegaConf.to_container(OmegaConf.load(path))
        differ = sorted(
            k for k in set(previous) | set(current) if k not in ("ray", "progress") and previous.get(k) != current.get(k)
        )
        if differ:
            print(f"warning: resuming {output} with different settings for: {', '.join(differ)}", file=out)
        return
    path.write_text(OmegaConf.to_yaml(current))


EXIT_NOT_ALL_SCORED = 3


def run(argv: list[str]) -> int:
    """The command (see module doc): its exit status; bad input raises InvalidInput."""
    _install_stop_handlers()
    try:
        cfg, smoke = prepare(argv)
        summary = run_sweep(cfg, smoke=smoke)
    except (NoWorkersLeft, RayUnreachable) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: finished episodes are in episodes.jsonl; rerun with the same output_dir to resume", file=sys.stderr)
        return 130
    return 0 if summary["run"]["all_scored"] else EXIT_NOT_ALL_SCORED
