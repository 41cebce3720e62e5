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

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Optional, TextIO

from rollout.core.config import RolloutConfig
from rollout.core.process_env import rearm_signal_handlers
from rollout.pool import NoWorkersLeft, RayUnreachable
from rollout.sweep.config import SweepConfig
from rollout.sweep.metrics import format_table
from rollout.sweep.run import SweepResult, SweepStart, prepare, run_sweep

EXIT_NOT_ALL_SCORED = 3


def run(argv: list[str]) -> int:
    """The command (see module doc): its exit status; bad input raises InvalidInput."""
    install_stop_handlers()
    try:
        cfg, smoke = prepare(argv)
        with episode_config(cfg) as episodes:
            if smoke:
                print(
                    f"smoke sweep: no llm.base_url set -> built-in scripted {cfg.llm.scripted} model, "
                    f"first {cfg.max_tasks} tasks per domain (set llm.base_url=... for a real sweep)",
                    flush=True,
                )
            result = run_sweep(cfg, episode_config=episodes, on_start=print_start)
    except (NoWorkersLeft, RayUnreachable) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: finished episodes are in episodes.jsonl; rerun with the same output_dir to resume", file=sys.stderr)
        return 130
    print_result(result)
    return 0 if result.all_scored else EXIT_NOT_ALL_SCORED


@contextlib.contextmanager
def episode_config(cfg: SweepConfig) -> Iterator[Optional[RolloutConfig]]:
    """The episodes' config: with `llm.scripted`, pointed at a scripted server started for the
    block (its address is this run's, not the saved config's); else None (the sweep's own)."""
    if not cfg.llm.scripted:
        yield None
        return
    from rollout.scripted import ScriptedServer
    from rollout.scripted.endpoints import pointed_at

    with ScriptedServer(cfg.llm.scripted, record=False) as server:
        yield pointed_at(cfg.episode_config(), server.url)


def print_start(start: SweepStart, out: Optional[TextIO] = None) -> None:
    out = out or sys.stdout
    if start.corrupt_lines:
        print(
            f"warning: skipped {start.corrupt_lines} corrupt line(s) in {start.log} (not a JSON episode record); "
            f"their episodes are run again",
            file=out,
        )
    if start.changed_settings:
        print(
            f"warning: resuming {start.log.parent} with different settings for: {', '.join(start.changed_settings)}",
            file=out,
        )
    print(
        f"{start.planned} episodes planned, {start.done} already done in {start.log}, {start.to_run} to run"
        + (f" ({start.run_again} of them failed on infrastructure before and are run again)" if start.run_again else ""),
        file=out,
        flush=True,
    )


def print_result(result: SweepResult, out: Optional[TextIO] = None) -> None:
    out = out or sys.stdout
    summary = result.summary
    print(format_table(summary, episodes_per_s=summary["run"]["episodes_per_s"]), file=out)
    if result.no_results_file:
        print(f"no tau2 Results file: {result.no_results_file}", file=out)
    print(f"results: {result.output}/ {', '.join(result.files)}", file=out, flush=True)
    if not result.all_scored:
        failures = ", ".join(f"{c}={n}" for c, n in summary["all"]["failures"].items())
        print(
            f"{result.planned - result.scored} of {result.planned} planned episodes are not scored ({failures}); rerun "
            f"with the same output_dir to retry the infrastructure failures",
            file=out,
            flush=True,
        )


def install_stop_handlers() -> None:
    """SIGINT and SIGTERM (`ray job stop`) both raise KeyboardInterrupt once; a second
    signal during the clean stop is ignored, so the stop completes without a traceback.
    The pool keeps them when it starts Ray and arms them again once its workers started;
    each signal arms them again too (`rearm_signal_handlers`)."""
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
