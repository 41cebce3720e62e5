"""P6: a sweep's cost as it grows (1,000 / 5,000 / 20,000 episodes by default).

Each size is a real sweep (`rollout.sweep.run.run_sweep`: plan, local Ray with 2 workers,
episodes.jsonl, summary, exports, report) of the cheapest real episodes: `domain` (airline)
with the scripted **noop** agent (it closes at once; the user simulator answers), zero
latency, `tasks` tasks x `size / tasks` samples. The scripted server runs in its own process.
Every sweep runs in a fresh driver process, so its peak RSS is the driver's own:

- `s_per_episode`: the sweep's episode phase (first dispatch to last record) / episodes;
- `driver_peak_mib`: the driver's RSS high-water mark (VmHWM) over the whole sweep, summary,
  exports and report included; `driver_run_peak_mib`: its RSS sampled at every record;
- `bytes_per_episode`: episodes.jsonl / episodes; `dir_bytes_per_episode`: the whole output_dir;
- `resume_s`: a rerun on the finished output_dir (a fresh process): time until it has planned
  and read the log and knows nothing is left to run (after imports: Python's start and
  importing tau2 and Ray are not counted); `resume_total_s`: that rerun to its end
  (it rewrites summary, exports and report); `resume_peak_mib`: that process's peak RSS;
- `summary_s` / `report_s`: `summarize(iter_records(dir))` and `write_report([dir])` alone;
- `no_transcripts`: bytes per episode of the smallest sweep run again with `transcripts=false`.

`ratios` are each per-episode figure at the largest size over the smallest (memory: the
absolute peak): 1.0 means linear cost (flat per episode); more means worse than linear.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rollout.bench.common import peak_rss_mib, rss_mib, scripted_process
from rollout.core.process_env import apply_defaults

DEFAULT_SIZES = (1000, 5000, 20000)
PER_EPISODE = (
    "s_per_episode",
    "bytes_per_episode",
    "dir_bytes_per_episode",
    "resume_s_per_episode",
    "resume_total_s_per_episode",
    "summary_s_per_episode",
    "report_s_per_episode",
)
ABSOLUTE = ("driver_peak_mib", "driver_run_peak_mib", "resume_peak_mib")


def bench_p6(sizes=DEFAULT_SIZES, domain: str = "airline", tasks: int = 50, workers: int = 2) -> dict:
    """The P6 row of bench.json (see module doc)."""
    out: dict = {"domain": domain, "policy": "noop", "tasks": tasks, "workers": workers, "sizes": {}}
    with scripted_process(policy="noop") as server, tempfile.TemporaryDirectory(prefix="bench-p6-") as tmp:

        def args(size: int, out_dir: Path) -> list[str]:
            return [
                "--url",
                server.url,
                "--domain",
                domain,
                "--tasks",
                str(tasks),
                "--workers",
                str(workers),
                "--size",
                str(size),
                "--out-dir",
                str(out_dir),
            ]

        for size in sizes:
            out_dir = Path(tmp) / f"sweep-{size}"
            run = _child("run", args(size, out_dir))
            run.update(_child("resume", args(size, out_dir)))
            out["sizes"][str(size)] = _per_episode(run)
            print(f"P6 {size}: {json.dumps(out['sizes'][str(size)])}", flush=True)
            shutil.rmtree(out_dir, ignore_errors=True)
        # the smallest size again with transcripts=false: what leaving the messages out saves
        out_dir = Path(tmp) / "sweep-no-transcripts"
        run = _child("run", [*args(sizes[0], out_dir), "--no-transcripts"])
        out["no_transcripts"] = {
            "episodes": run["episodes"],
            "bytes_per_episode": round(run["jsonl_bytes"] / run["episodes"], 1),
            "dir_bytes_per_episode": round(run["dir_bytes"] / run["episodes"], 1),
        }
        shutil.rmtree(out_dir, ignore_errors=True)
    first, last = out["sizes"][str(sizes[0])], out["sizes"][str(sizes[-1])]
    out["ratios"] = {k: round(last[k] / first[k], 3) if first.get(k) else None for k in (*PER_EPISODE, *ABSOLUTE)}
    out["ratio_of"] = f"{sizes[-1]} / {sizes[0]} episodes"
    return out


def _per_episode(m: dict) -> dict:
    n = m["episodes"]
    row = {
        "episodes": n,
        "driver_peak_mib": m["driver_peak_mib"],
        "driver_run_peak_mib": m["driver_run_peak_mib"],
        "resume_peak_mib": m["resume_peak_mib"],
        "wall_s": m["wall_s"],
        "resume_s": m["resume_s"],
        "summary_s": m["summary_s"],
        "report_s": m["report_s"],
    }
    for key, value in (
        ("s_per_episode", m["episodes_s"]),
        ("bytes_per_episode", m["jsonl_bytes"]),
        ("dir_bytes_per_episode", m["dir_bytes"]),
        ("resume_s_per_episode", m["resume_s"]),
        ("resume_total_s_per_episode", m["resume_total_s"]),
        ("summary_s_per_episode", m["summary_s"]),
        ("report_s_per_episode", m["report_s"]),
    ):
        row[key] = round(value / n, 8) if key.endswith("s_per_episode") else round(value / n, 1)
    return row


def _child(mode: str, args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, "-m", "rollout.bench.scale", mode, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"P6 {mode} child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _sweep_config(a):
    from rollout.scripted import endpoints
    from rollout.sweep.run import prepare

    samples = max(1, round(a.size / min(a.tasks, a.size)))
    cfg, _ = prepare(
        [
            f"domains=[{a.domain}]",
            f"max_tasks={min(a.tasks, a.size)}",
            f"num_samples={samples}",
            f"output_dir={a.out_dir}",
            "progress=false",
            f"ray.num_workers={a.workers}",
            f"ray.num_cpus={a.workers}",
            *endpoints.overrides(a.url),
            f"transcripts={str(not a.no_transcripts).lower()}",
        ]
    )
    return cfg


class _Stamp:
    """An `on_start` for run_sweep that notes when the sweep's plan is checked and its log read."""

    def __init__(self):
        self.at = None
        self.start = None

    def __call__(self, start) -> None:
        self.at, self.start = time.perf_counter(), start


def _run(a) -> dict:
    from rollout.sweep.run import run_sweep

    cfg = _sweep_config(a)
    peak = [rss_mib()]

    def on_record(driver, record):
        peak[0] = max(peak[0], rss_mib())

    start = time.perf_counter()
    summary = run_sweep(cfg, on_record=on_record).summary
    wall = time.perf_counter() - start
    out_dir = Path(a.out_dir)
    episodes = summary["all"]["episodes"]
    assert summary["all"]["failed"] == 0, summary["all"]["failures"]
    return {
        "episodes": episodes,
        "episodes_s": summary["run"]["episodes_s"],
        "wall_s": round(wall, 3),
        "driver_peak_mib": round(peak_rss_mib(), 1),
        "driver_run_peak_mib": round(peak[0], 1),
        "jsonl_bytes": (out_dir / "episodes.jsonl").stat().st_size,
        "dir_bytes": sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file()),
    }


def _resume(a) -> dict:
    from rollout.sweep.metrics import summarize
    from rollout.sweep.records import iter_records
    from rollout.sweep.report import write_report
    from rollout.sweep.run import run_sweep

    cfg = _sweep_config(a)
    stamp = _Stamp()
    begin = time.perf_counter()
    summary = run_sweep(cfg, on_start=stamp).summary
    total = time.perf_counter() - begin
    assert summary["run"]["episodes_run"] == 0, stamp.start
    peak = peak_rss_mib()
    start = time.perf_counter()
    summarize(iter_records(a.out_dir), num_samples=cfg.num_samples)
    summary_s = time.perf_counter() - start
    start = time.perf_counter()
    write_report([Path(a.out_dir)])
    report_s = time.perf_counter() - start
    return {
        "resume_s": round(stamp.at - begin, 3),
        "resume_total_s": round(total, 3),
        "resume_peak_mib": round(peak, 1),
        "summary_s": round(summary_s, 4),
        "report_s": round(report_s, 4),
    }


def main(argv=None) -> int:
    apply_defaults()  # an entry point (also of the bench's own subprocesses)
    p = argparse.ArgumentParser(
        prog="python -m rollout.bench.scale", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("mode", choices=["bench", "run", "resume"], nargs="?", default="bench")
    p.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="bench mode: episodes per sweep")
    p.add_argument("--url")
    p.add_argument("--domain", default="airline")
    p.add_argument("--tasks", type=int, default=50)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--size", type=int)
    p.add_argument("--out-dir")
    p.add_argument("--no-transcripts", action="store_true", help="run mode: the sweep with transcripts=false")
    a = p.parse_args(argv)
    if a.mode == "bench":
        print(json.dumps(bench_p6([int(s) for s in a.sizes.split(",")], a.domain, a.tasks, a.workers), indent=2))
    else:
        print(json.dumps(_run(a) if a.mode == "run" else _resume(a)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
