"""`tau2-rollout sweep [key=value ...]`: run a sweep of TAU2 episodes on Ray.

With no agent endpoint configured this is the offline smoke sweep (local Ray, tau2
in-process, the built-in scripted oracle, the first 3 tasks of every domain). With
`llm.base_url=...` (and a user simulator endpoint) it is a real sweep. Results go to
`<output_dir>/episodes.jsonl` as they finish; a rerun with the same output_dir resumes.
At the end: `summary.json`, the resolved config (`config.yaml`, keys redacted), tau2
Results files (`tau2_results*.json`, see rollout/tau2_export.py), a report (`report/`)
and a table.

Exit status: 0 done; 2 bad input (one line naming the key, the value and what is valid;
nothing started, nothing written); 1 no Ray worker could run (finished episodes kept);
130 interrupted by Ctrl-C or SIGTERM (finished episodes kept, in-flight ones cancelled).
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Optional

from omegaconf import OmegaConf

from rollout.command import split_config_files
from rollout.config import load_config, to_dict
from rollout.failures import InvalidInput
from rollout.scripted.endpoints import pointed_at
from rollout.sweep.config import SweepConfig, check_fits, check_sweep
from rollout.sweep.driver import NoWorkersLeft
from rollout.sweep.exports import export_sweep
from rollout.sweep.metrics import format_table, summarize
from rollout.sweep.plan import key_of, plan_episodes
from rollout.sweep.progress import Progress
from rollout.sweep.records import EpisodeStore, iter_records, peek_completed
from rollout.sweep.report import write_report

SMOKE_MAX_TASKS = 3


def prepare(argv: list[str]) -> tuple[SweepConfig, bool]:
    """The validated sweep config and whether it is the offline smoke run.

    `argv` is `key=value` overrides, optionally with `--config FILE` (repeatable): YAML files
    merged over the package defaults, before the overrides (e.g. conf/sweep.yaml)."""
    files, overrides = split_config_files(argv)
    cfg = load_config(overrides, schema=SweepConfig, files=files)
    smoke = cfg.llm.scripted is None and not cfg.llm.base_url
    if smoke:
        cfg.llm.scripted = "oracle"
        if cfg.max_tasks is None:
            cfg.max_tasks = SMOKE_MAX_TASKS
    if cfg.output_dir is None:
        cfg.output_dir = str(Path("runs") / time.strftime("sweep-%Y%m%d-%H%M%S"))
    check_sweep(cfg)
    return cfg, smoke


def run_sweep(cfg: SweepConfig, *, smoke: bool = False, on_record=None, out=sys.stdout) -> dict:
    """Plan, resume, run and summarize a sweep. Returns the summary (also written to disk).

    Every configuration error (InvalidInput) is raised before Ray starts and before anything
    is written; a cluster's resources are checked right after connecting, still before
    anything is written."""
    check_sweep(cfg)
    specs = plan_episodes(cfg)  # InvalidInput before Ray starts
    output = Path(cfg.output_dir)
    completed = peek_completed(output)  # one pass over the log (not one per planned episode)
    pending = [s for s in specs if key_of(s) not in completed]
    if smoke:
        print(f"smoke sweep: no llm.base_url set -> built-in scripted {cfg.llm.scripted} model, "
              f"first {cfg.max_tasks} tasks per domain (set llm.base_url=... for a real sweep)", file=out)
    with _RaySession(cfg, needed=bool(pending)) as session, EpisodeStore(output, transcripts=cfg.transcripts) as store:
        if store.corrupt_lines:
            print(f"warning: skipped {store.corrupt_lines} corrupt line(s) in {store.path} (not a JSON episode "
                  f"record); their episodes are run again", file=out)
        _save_config(cfg, output, out)
        done = store.completed_keys()
        todo = [s for s in specs if key_of(s) not in done]
        print(f"{len(specs)} episodes planned, {len(specs) - len(todo)} already in {store.path}, "
              f"{len(todo)} to run", file=out, flush=True)
        started = time.monotonic()
        written, episodes_s = 0, None
        if todo:
            written, episodes_s = session.run(store, todo, len(specs), on_record)
        wall = time.monotonic() - started
    planned = {key_of(s) for s in specs}

    def finished():  # the planned episodes' records, streamed from the log (constant memory)
        return (r for r in iter_records(output) if r.key in planned)

    summary = summarize(finished(), num_samples=cfg.num_samples)
    summary["run"] = {"episodes_planned": len(specs), "episodes_run": written, "wall_s": round(wall, 3),
                      "episodes_s": round(episodes_s, 3) if episodes_s else None,
                      "episodes_per_s": round(written / episodes_s, 4) if written and episodes_s else None,
                      "corrupt_lines_skipped": store.corrupt_lines}
    (output / "summary.json").write_text(json.dumps(summary, indent=2))
    print(format_table(summary, episodes_per_s=summary["run"]["episodes_per_s"]), file=out)
    exported = export_sweep(output, finished(), to_dict(cfg))
    page = write_report([output]) if summary["all"]["episodes"] else None
    print(f"results: {output}/episodes.jsonl, summary.json, {', '.join(p.name for p in exported)}"
          + (f", report/{page.name}" if page else ""), file=out, flush=True)
    return summary


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
            check_fits(cfg, cpus, f"the Ray cluster has {cpus:g} CPUs in total")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.started_ray:
            import ray

            ray.shutdown()
            self.started_ray = False
        if self.server is not None:
            self.server.stop()
            self.server = None

    def run(self, store: EpisodeStore, todo, total: int, on_record) -> tuple[int, Optional[float]]:
        """Run `todo` on Ray; (episodes written, seconds from the first dispatch to the end)."""
        from rollout.sweep.driver import SweepDriver

        cfg = self.cfg
        progress = Progress(total, done=total - len(todo), enabled=cfg.progress)
        episode_cfg = cfg.episode_config()
        if self.server is not None:  # the scripted server's address is this run's, not the saved config's
            episode_cfg = pointed_at(episode_cfg, self.server.url)
        driver = SweepDriver(episode_cfg, store, num_workers=_num_workers(cfg, len(todo)),
                             slots_per_worker=cfg.ray.slots_per_worker, cpus_per_worker=cfg.ray.cpus_per_worker,
                             retry=cfg.retry, progress=progress, on_record=on_record,
                             warmup_domains=sorted({s.domain for s in todo}),
                             worker_start_timeout_s=cfg.ray.worker_start_timeout_s)
        try:
            driver.run(todo)
        finally:
            progress.close()
        return driver.written, (driver.finished - driver.started) if driver.started else None


def _init_ray(cfg: SweepConfig) -> None:
    import ray

    # The workers' environment comes with each actor (start_workers), which also works
    # inside a Ray job, whose own runtime env a driver-level one may not override.
    if cfg.ray.address:
        ray.init(address=cfg.ray.address)
    else:
        ray.init(address="local", num_cpus=cfg.ray.num_cpus, include_dashboard=False,
                 object_store_memory=cfg.ray.object_store_mb * 2**20)
    _install_stop_handlers()  # ray.init installs its own SIGTERM handler (sys.exit)


def _num_workers(cfg: SweepConfig, episodes: int) -> int:
    import ray

    if cfg.ray.num_workers is not None:
        return cfg.ray.num_workers
    cpus = ray.cluster_resources().get("CPU", 1)
    by_cpu = max(1, int(cpus // cfg.ray.cpus_per_worker))
    return max(1, min(by_cpu, math.ceil(episodes / cfg.ray.slots_per_worker)))


def _install_stop_handlers() -> None:
    """SIGINT and SIGTERM (`ray job stop`) both raise KeyboardInterrupt once; a second
    signal during the clean stop is ignored, so the stop completes without a traceback."""
    if threading.current_thread() is not threading.main_thread():
        return
    stopping = []

    def handler(signum, frame):
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
        differ = sorted(k for k in set(previous) | set(current)
                        if k not in ("ray", "progress") and previous.get(k) != current.get(k))
        if differ:
            print(f"warning: resuming {output} with different settings for: {', '.join(differ)}", file=out)
        return
    path.write_text(OmegaConf.to_yaml(current))


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    _install_stop_handlers()
    try:
        cfg, smoke = prepare(argv)
        run_sweep(cfg, smoke=smoke)
    except InvalidInput as e:
        print(f"error: {e.failure.message}", file=sys.stderr)
        return 2
    except NoWorkersLeft as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: finished episodes are in episodes.jsonl; rerun with the same output_dir to resume",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    sys.exit(main())
