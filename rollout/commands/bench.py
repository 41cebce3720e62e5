"""`tau2-rollout bench [out=bench.json] [quick=true] [rows=[P1,P7]] [p6_sizes=[1000,5000]] [aiohttp=false]`: the rollout system against its baselines.

Each row runs the baseline side by side in the same run and reports the median of
several repetitions; the scripted model server runs in a separate process.

  P1  environment-side cost per episode (gold actions, zero-latency model): ours
      (LocalSession) vs tau2's AgentGymEnv driven with the same actions
  P2  LLM-bound throughput (200 ms per completion; 8/32/64 episodes in flight): ours (one
      process, and on Ray with 2 workers) vs the ideal N / (completions per episode x
      latency), the same episodes' packing bound, and `tau2 run --max-concurrency N`
  P3  Ray fan-out (2 workers) vs the same episodes in one process with plain asyncio
  P4  memory per in-flight airline episode vs the airline DB's in-memory size (rollout/bench/memory.py)
  P5  aenv backend: starting an episode on a reused instance vs on a fresh server
  P6  a sweep's cost as it grows (rollout/bench/scale.py): time, driver memory, bytes,
      resume, summary and report at 1,000 / 5,000 / 20,000 episodes (`p6_sizes`)
  P7  rollout CPU per model completion per domain and in-flight level, the scripted server's
      CPU apart, and a profile split by component (rollout/bench/cpu.py)
  P8  the training path: CPU per completion through `Tau2Agent.run` (as AReaL calls it) beside
      the sweep path, and episode start on aenv through it vs a fresh server (rollout/bench/training.py)
  P9  HTTP client CPU per chat request: fast_http vs httpx, aiohttp and openai (rollout/bench/http_ab.py)
  P10 the rollout pool with token capture on vs off at 64 / 256 in flight, and the driver's cost
      of `stream_groups` vs `run` (rollout/bench/pool_training.py)
  P11 token-in vs chat capture through the pool at 64 in flight on Qwen3 (thinking on, off) and
      Qwen2.5 templates: throughput, CPU per completion, split boundaries (rollout/bench/token_in.py)
  P12 asynchronous training through the pool (weight swaps under running episodes, a staleness
      bound) vs a synchronous barrier: trained episodes per hour (rollout/bench/async_rl.py)

Keys: `out` (default bench.json), `quick` (true: tiny sizes, a smoke run, not a measurement),
`rows` (a subset, e.g. `rows=[P1,P3]`; CPU is P7; default: all), `p6_sizes` (P6's sweep sizes
in episodes; default [1000,5000,20000], quick: [4,8]), `aiohttp` (default true: P2 (in one
process and on Ray) and P7 also run with aiohttp as the clients' HTTP transport in place of
fast_http, in turn with it; the rows get both; rollout/bench/aiohttp_transport.py).

`python -m rollout.bench.table bench.json` prints the performance table of docs/performance.md.
Exit status: 0 written; 2 bad input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Optional

from rollout.bench.aiohttp_transport import TRANSPORTS
from rollout.bench.bench import ROWS, run_rows
from rollout.core.command import CommandArgs, parse_args
from rollout.core.failures import InvalidInput

ROW_ALIASES = MappingProxyType({"CPU": "P7"})


@dataclass
class BenchArgs(CommandArgs):
    """The command's arguments (see module doc)."""

    out: str = "bench.json"
    quick: bool = False
    rows: list[str] = field(default_factory=lambda: list(ROWS))
    p6_sizes: Optional[list[int]] = None
    aiohttp: bool = True


def selected_rows(args: BenchArgs) -> set[str]:
    """The rows to run (aliases resolved). Raises InvalidInput for an unknown row or a bad size."""
    rows = {ROW_ALIASES.get(r.upper(), r.upper()) for r in args.rows}
    unknown = sorted(rows - set(ROWS))
    if unknown or not rows:
        raise InvalidInput(f"rows={args.rows}: valid rows: {', '.join(ROWS)} (CPU = P7), at least one")
    if args.p6_sizes is not None and (not args.p6_sizes or min(args.p6_sizes) < 1):
        raise InvalidInput(f"p6_sizes={args.p6_sizes}: valid: a list of integers >= 1")
    return rows


def run(argv: list[str]) -> int:
    """The command (see module doc): its exit status; bad input raises InvalidInput."""
    args = parse_args(argv, BenchArgs)
    transports = TRANSPORTS if args.aiohttp else TRANSPORTS[:1]
    report = run_rows(selected_rows(args), quick=args.quick, p6_sizes=args.p6_sizes, on_row=_print, transports=transports)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


def _print(row: str, figures: dict) -> None:
    print(f"{row}: {json.dumps(figures)}", flush=True)
