"""Sweep metrics: mean reward with standard error, tau2's pass^k, failures by class."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable

from tau2.metrics.agent_metrics import is_successful, pass_hat_k


def summarize(records: Iterable[dict], *, num_samples: int) -> dict:
    """Per-domain and overall metrics of episode records (see store.py).

    pass^k (k = 1..num_samples) is tau2's: per task C(successes, k) / C(n, k) over its n
    scored samples, averaged over the tasks with n >= k. Failed episodes (reward null)
    count in `failures`, never in rewards.
    """
    by_domain: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_domain[r["key"]["domain"]].append(r)
    domains = {d: _group(rs, num_samples) for d, rs in sorted(by_domain.items())}
    every = [r for rs in by_domain.values() for r in rs]
    return {"domains": domains, "all": _group(every, num_samples)}


def _group(records: list[dict], num_samples: int) -> dict:
    scored = [r for r in records if r["status"] == "ok"]
    rewards = [float(r["reward"]) for r in scored]
    n = len(rewards)
    mean = sum(rewards) / n if n else None
    stderr = (math.sqrt(sum((x - mean) ** 2 for x in rewards) / (n - 1)) / math.sqrt(n)) if n > 1 else (0.0 if n else None)
    per_task: dict[tuple, list[float]] = defaultdict(list)
    for r in scored:
        per_task[(r["key"]["domain"], str(r["key"]["task_id"]))].append(float(r["reward"]))
    pass_k = {}
    for k in range(1, num_samples + 1):
        values = [pass_hat_k(len(v), sum(is_successful(x) for x in v), k) for v in per_task.values() if len(v) >= k]
        pass_k[str(k)] = sum(values) / len(values) if values else None
    failures = Counter(r["failure"]["class"] for r in records if r["status"] != "ok")
    return {
        "episodes": len(records),
        "scored": n,
        "failed": len(records) - n,
        "mean_reward": mean,
        "stderr": stderr,
        "pass_hat_k": pass_k,
        "failures": dict(sorted(failures.items())),
    }


def format_table(summary: dict, *, episodes_per_s: float | None = None) -> str:
    """The summary as a fixed-width text table."""
    ks = list(summary["all"]["pass_hat_k"])
    head = ["domain", "episodes", "failed", "mean reward", *[f"pass^{k}" for k in ks], "failures"]
    rows = []
    for name, g in [*summary["domains"].items(), ("all", summary["all"])]:
        mean = "-" if g["mean_reward"] is None else f"{g['mean_reward']:.3f} ± {g['stderr']:.3f}"
        passes = ["-" if g["pass_hat_k"][k] is None else f"{g['pass_hat_k'][k]:.3f}" for k in ks]
        fails = ", ".join(f"{c}={n}" for c, n in g["failures"].items()) or "-"
        rows.append([name, str(g["episodes"]), str(g["failed"]), mean, *passes, fails])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in [head, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if episodes_per_s is not None:
        lines.append(f"throughput: {episodes_per_s:.2f} episodes/s")
    return "\n".join(lines)
