"""Sweep metrics: mean reward with standard error, tau2's pass^k, failures by class.

Two views of the same records, per domain and overall:
- over **scored** episodes (`mean_reward`, `stderr`, `pass_hat_k`): an infrastructure
  failure is not the policy's outcome, so it is excluded; `failed` and `failures` (by
  class) say how many were excluded and why;
- **as tau2 counts** (`tau2_counting`): every finally failed episode counted as reward 0.0,
  which is what `tau2 run --skip-failed-samples` records for a simulation that raised
  (a `SimulationRun` with `reward_info.reward = 0.0`, `skipped=True`), and what tau2's
  `compute_metrics` then averages and feeds to pass^k. Compare these with tau2's numbers.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import NamedTuple, Optional

from tau2.metrics.agent_metrics import is_successful, pass_hat_k

from rollout.core.process_env import frozen_heap
from rollout.sweep.records import SweepRecord
from rollout.trajectory.stitch import stitch


def summarize(records: Iterable[SweepRecord], *, num_samples: int) -> dict:
    """Per-domain and overall metrics of episode records (see module doc).

    pass^k (k = 1..num_samples) is tau2's: per task C(successes, k) / C(n, k) over its n
    samples, averaged over the tasks with n >= k. With token capture, `capture` counts the
    policy calls and how their boundaries stitched (clean / split) per domain. The process's
    objects alive before the build are left out of garbage collections meanwhile
    (`frozen_heap`), so its cost per record does not grow with the driver's heap.
    """
    with frozen_heap():
        return _summarize(records, num_samples)


def _summarize(records: Iterable[SweepRecord], num_samples: int) -> dict:
    by_domain: dict[str, list[_Outcome]] = defaultdict(list)
    capture: dict[str, Counter] = defaultdict(Counter)
    tau2_domains: dict[str, str] = {}
    for r in records:  # streamed: only the outcome of each record is kept
        if getattr(r, "tau2_domain", None):
            tau2_domains[r.domain] = r.tau2_domain
        by_domain[r.domain].append(_Outcome((r.domain, r.task_id), r.ok, float(r.reward) if r.ok else 0.0, r.failure_class))
        if getattr(r, "turns", None):  # (the report summarizes projections without turns)
            _, drift = stitch(r.turns)
            capture[r.domain].update(
                calls=len(r.turns),
                captured=sum(t is not None for t in r.turns),
                boundaries_clean=drift.clean,
                boundaries_split=drift.split,
                trajectories=1,
                trajectories_clean=int(drift.split == 0 and all(r.turns)),
            )
    domains = {d: _group(rs, num_samples) for d, rs in sorted(by_domain.items())}
    for d, tau2_domain in tau2_domains.items():
        domains[d]["tau2_domain"] = tau2_domain  # a task set's name is the group; this is its tau2 domain
    every = [r for rs in by_domain.values() for r in rs]
    out = {"domains": domains, "all": _group(every, num_samples)}
    if capture:
        out["capture"] = {d: _rates(c) for d, c in sorted(capture.items())}
        out["capture"]["all"] = _rates(sum(capture.values(), Counter()))
    return out


CAPTURE_COUNTS = ("calls", "captured", "boundaries_clean", "boundaries_split", "trajectories", "trajectories_clean")


def _rates(c: Counter) -> dict:
    """Every count (a zero too: Counter sums drop them) and the clean rate."""
    boundaries = c["boundaries_clean"] + c["boundaries_split"]
    return {**{k: c[k] for k in CAPTURE_COUNTS}, "clean_rate": c["boundaries_clean"] / boundaries if boundaries else None}


class _Outcome(NamedTuple):
    task: tuple[str, str]
    ok: bool
    reward: float
    failure_class: Optional[str]


def _mean_stderr(values: list[float]) -> tuple[float | None, float | None]:
    n = len(values)
    if not n:
        return None, None
    mean = sum(values) / n
    stderr = math.sqrt(sum((x - mean) ** 2 for x in values) / (n - 1)) / math.sqrt(n) if n > 1 else 0.0
    return mean, stderr


def _pass_k(rewards_by_task: dict[tuple, list[float]], num_samples: int) -> dict[str, float | None]:
    # tasks with the same (trials, successes) share tau2's value: one pass_hat_k per distinct pair
    # and k (its binomials grow with k, so per task it would cost tasks x k bignum products)
    counts = Counter((len(v), sum(is_successful(x) for x in v)) for v in rewards_by_task.values())
    out = {}
    for k in range(1, num_samples + 1):
        tasks = sum(m for (n, _), m in counts.items() if n >= k)
        total = sum(pass_hat_k(n, c, k) * m for (n, c), m in counts.items() if n >= k)
        out[str(k)] = total / tasks if tasks else None
    return out


def _group(records: list[_Outcome], num_samples: int) -> dict:
    scored: dict[tuple, list[float]] = defaultdict(list)
    as_tau2: dict[tuple, list[float]] = defaultdict(list)
    for r in records:
        if r.ok:
            scored[r.task].append(r.reward)
        as_tau2[r.task].append(r.reward)
    rewards = [x for v in scored.values() for x in v]
    mean, stderr = _mean_stderr(rewards)
    mean0, stderr0 = _mean_stderr([x for v in as_tau2.values() for x in v])
    failures = Counter(r.failure_class for r in records if not r.ok)
    return {
        "episodes": len(records),
        "scored": len(rewards),
        "failed": len(records) - len(rewards),
        "mean_reward": mean,
        "stderr": stderr,
        "pass_hat_k": _pass_k(scored, num_samples),
        "failures": dict(sorted(failures.items())),
        "tau2_counting": {
            "mean_reward": mean0,
            "stderr": stderr0,
            "pass_hat_k": _pass_k(as_tau2, num_samples),
            "note": "failed episodes counted as reward 0.0, as tau2 run --skip-failed-samples does",
        },
    }


def _fmt(mean, stderr) -> str:
    return "-" if mean is None else f"{mean:.3f} ± {stderr:.3f}"


def shown_ks(num_samples: int, most: int = 5) -> list[str]:
    """The k of pass^k a printed table shows: 1, 2, 4, 8, ... and num_samples, at most `most`
    of them (summary.json keeps every k)."""
    ks = [k for k in (2**i for i in range(num_samples.bit_length())) if k < num_samples][: most - 1] + [num_samples]
    return [str(k) for k in sorted(set(ks)) if k >= 1]


def table_rows(summary: dict, ks: list[str] | None = None) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the summary table: one row per domain and one for all (pass^k for `ks`;
    default: `shown_ks`)."""
    ks = shown_ks(len(summary["all"]["pass_hat_k"]) or 1) if ks is None else ks
    head = [
        "domain",
        "episodes",
        "scored",
        "mean reward (scored)",
        *[f"pass^{k}" for k in ks],
        "mean (failed=0, as tau2)",
        *[f"pass^{k} (failed=0)" for k in ks],
        "excluded (failed, by class)",
    ]
    rows = []
    for name, g in [*summary["domains"].items(), ("all", summary["all"])]:
        t = g["tau2_counting"]
        passes = ["-" if g["pass_hat_k"].get(k) is None else f"{g['pass_hat_k'][k]:.3f}" for k in ks]
        passes0 = ["-" if t["pass_hat_k"].get(k) is None else f"{t['pass_hat_k'][k]:.3f}" for k in ks]
        fails = ", ".join(f"{c}={n}" for c, n in g["failures"].items())
        rows.append(
            [
                f"{name} ({g['tau2_domain']})" if g.get("tau2_domain") not in (None, name) else name,
                str(g["episodes"]),
                str(g["scored"]),
                _fmt(g["mean_reward"], g["stderr"]),
                *passes,
                _fmt(t["mean_reward"], t["stderr"]),
                *passes0,
                f"{g['failed']} ({fails})" if fails else "0",
            ]
        )
    return head, rows


def format_table(summary: dict, *, episodes_per_s: float | None = None) -> str:
    """The summary as a fixed-width text table."""
    head, rows = table_rows(summary)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in [head, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    failed = summary["all"]["failed"]
    if failed:
        lines.append(
            f"{failed} finally failed episode(s) are excluded from 'scored' (infrastructure or bad input, not the "
            f"policy: by class in the last column); the 'failed=0' columns count them as reward 0.0, as "
            f"tau2 run --skip-failed-samples does"
        )
    every_k = len(summary["all"]["pass_hat_k"])
    if every_k > len(shown_ks(every_k or 1)):
        lines.append(f"pass^k is printed for k = {', '.join(shown_ks(every_k))}; summary.json has every k up to {every_k}")
    capture = summary.get("capture", {}).get("all")
    if capture:
        rate = "-" if capture["clean_rate"] is None else f"{100 * capture['clean_rate']:.0f} %"
        lines.append(
            f"token capture: {capture['captured']}/{capture['calls']} policy calls captured; call boundaries "
            f"clean {capture['boundaries_clean']}, split {capture['boundaries_split']} ({rate} clean); "
            f"{capture['trajectories_clean']}/{capture['trajectories']} trajectories one clean sequence"
        )
    if episodes_per_s is not None:
        lines.append(f"throughput: {episodes_per_s:.2f} episodes/s")
    return "\n".join(lines)
