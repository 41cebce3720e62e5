"""A sweep report: `write_report(output_dirs, out)` writes `report.md`, a self-contained
`report.html` (plots embedded) and the PNG plots: mean reward per domain with standard-error
bars, pass^k curves, the distribution of per-task success rates, failure causes, episode
duration and token usage. Several output dirs are drawn side by side (one colour per run).
Raises InvalidInput for a dir without a sweep's episodes.jsonl.
"""

from __future__ import annotations

import base64
import html
from collections import Counter, defaultdict
from pathlib import Path
from typing import NamedTuple, Optional

from rollout.sweep.metrics import summarize, table_rows
from rollout.sweep.records import iter_records

PLOTS = ("mean_reward", "pass_hat_k", "task_success", "failures", "durations", "tokens")


class _Row(NamedTuple):
    """What the report reads of one record (records are streamed; transcripts are not kept)."""

    domain: str
    task_id: str
    sample: int
    ok: bool
    reward: Optional[float]
    failure_class: Optional[str]
    duration_s: Optional[float]
    agent_tokens: int


def _row(r) -> _Row:
    agent = r.usage.get("agent", {})
    return _Row(
        r.domain,
        r.task_id,
        r.sample,
        r.ok,
        r.reward,
        r.failure_class,
        r.durations.get("total_s"),
        sum(agent.get(k, 0) for k in ("input_tokens", "output_tokens")),
    )


def load_run(output_dir: Path) -> dict:
    records = [_row(r) for r in iter_records(output_dir)]
    samples = max((r.sample for r in records), default=0) + 1
    return {
        "name": output_dir.name or str(output_dir),
        "dir": output_dir,
        "records": records,
        "summary": summarize(records, num_samples=samples),
    }


def write_report(output_dirs: list[Path], out: Optional[Path] = None) -> Path:
    """Build the report for one or more sweeps; returns the HTML path."""
    runs = [load_run(Path(d)) for d in output_dirs]
    out = Path(out) if out else Path(output_dirs[0]) / "report"
    out.mkdir(parents=True, exist_ok=True)
    images = _plots(runs, out)
    md = _markdown(runs, images)
    (out / "report.md").write_text(md)
    page = out / "report.html"
    page.write_text(_html(runs, images))
    return page


# ---- plots --------------------------------------------------------------------------------------
def _plots(runs: list[dict], out: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    domains = sorted({d for run in runs for d in run["summary"]["domains"]})
    width = 0.8 / max(1, len(runs))
    paths = {}

    def save(name, fig):
        path = out / f"{name}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths[name] = path

    fig, ax = plt.subplots(figsize=(7, 3.6))
    for i, run in enumerate(runs):
        groups = run["summary"]["domains"]
        means = [groups.get(d, {}).get("mean_reward") or 0.0 for d in domains]
        errs = [groups.get(d, {}).get("stderr") or 0.0 for d in domains]
        ax.bar(
            [x + i * width for x in range(len(domains))],
            means,
            width,
            yerr=errs,
            capsize=4,
            label=run["name"],
            color=colors[i % len(colors)],
        )
    ax.set_xticks([x + width * (len(runs) - 1) / 2 for x in range(len(domains))], domains)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("mean reward (± stderr)")
    ax.set_title("Mean reward per domain")
    ax.legend(fontsize=8)
    save("mean_reward", fig)

    fig, ax = plt.subplots(figsize=(7, 3.6))
    for i, run in enumerate(runs):
        for j, d in enumerate(domains):
            curve = run["summary"]["domains"].get(d, {}).get("pass_hat_k", {})
            ks = [int(k) for k, v in curve.items() if v is not None]
            ax.plot(
                ks,
                [curve[str(k)] for k in ks],
                marker="o",
                color=colors[(i * len(domains) + j) % len(colors)],
                linestyle=("-", "--", ":", "-.")[i % 4],
                label=f"{run['name']}: {d}",
            )
    ax.set_xlabel("k")
    ax.set_ylabel("pass^k")
    ax.set_ylim(0, 1.05)
    ax.set_title("pass^k (tau2's formula)")
    ax.legend(fontsize=7)
    save("pass_hat_k", fig)

    fig, ax = plt.subplots(figsize=(7, 3.6))
    for i, run in enumerate(runs):
        per_task = defaultdict(list)
        for r in run["records"]:
            if r.ok:
                per_task[(r.domain, r.task_id)].append(float(r.reward))
        rates = [sum(v) / len(v) for v in per_task.values()]
        ax.hist(rates, bins=[x / 10 for x in range(11)], alpha=0.6, label=run["name"], color=colors[i % len(colors)])
    ax.set_xlabel("task success rate (mean reward over samples)")
    ax.set_ylabel("tasks")
    ax.set_title("Reward distribution per task")
    ax.legend(fontsize=8)
    save("task_success", fig)

    fig, ax = plt.subplots(figsize=(7, 3.6))
    classes = sorted({r.failure_class for run in runs for r in run["records"] if not r.ok}) or ["none"]
    for i, run in enumerate(runs):
        counts = Counter(r.failure_class for r in run["records"] if not r.ok)
        ax.bar(
            [x + i * width for x in range(len(classes))],
            [counts.get(c, 0) for c in classes],
            width,
            label=run["name"],
            color=colors[i % len(colors)],
        )
    ax.set_xticks([x + width * (len(runs) - 1) / 2 for x in range(len(classes))], classes)
    ax.set_ylabel("episodes")
    ax.set_title("Failure causes (infrastructure, not scored)")
    ax.legend(fontsize=8)
    save("failures", fig)

    for name, label, value in (
        ("durations", "episode duration (s)", lambda r: r.duration_s),
        ("tokens", "agent tokens per episode (input + output)", lambda r: r.agent_tokens),
    ):
        fig, ax = plt.subplots(figsize=(7, 3.6))
        for i, run in enumerate(runs):
            values = [v for v in (value(r) for r in run["records"]) if v is not None]
            ax.hist(values, bins=20, alpha=0.6, label=run["name"], color=colors[i % len(colors)])
        ax.set_xlabel(label)
        ax.set_ylabel("episodes")
        ax.set_title(label.capitalize())
        ax.legend(fontsize=8)
        save(name, fig)
    return paths


# ---- text ---------------------------------------------------------------------------------------
def _rows(runs: list[dict]) -> tuple[list[str], list[list[str]]]:
    ks = sorted({k for run in runs for k in run["summary"]["all"]["pass_hat_k"]}, key=int)
    head, rows = ["run"], []
    for run in runs:
        run_head, run_rows = table_rows(run["summary"], ks)
        head = ["run", *run_head]
        rows += [[run["name"], *row] for row in run_rows]
    return head, rows


def _markdown(runs: list[dict], images: dict[str, Path]) -> str:
    head, rows = _rows(runs)
    lines = [
        "# Sweep report",
        "",
        "Runs: " + ", ".join(f"`{r['dir']}`" for r in runs),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines.append("")
    for name in PLOTS:
        lines += [f"![{name}]({images[name].name})", ""]
    return "\n".join(lines)


def _html(runs: list[dict], images: dict[str, Path]) -> str:
    head, rows = _rows(runs)
    table = (
        "<table><tr>"
        + "".join(f"<th>{html.escape(h)}</th>" for h in head)
        + "</tr>"
        + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
        + "</table>"
    )
    figures = "".join(
        f'<figure><img alt="{name}" src="data:image/png;base64,{base64.b64encode(images[name].read_bytes()).decode()}">'
        f"<figcaption>{name.replace('_', ' ')}</figcaption></figure>"
        for name in PLOTS
    )
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}figure{display:inline-block;margin:8px}"
    )
    runs_list = ", ".join(html.escape(str(r["dir"])) for r in runs)
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Sweep report</title><style>{style}</style>"
        f"</head><body><h1>Sweep report</h1><p>Runs: {runs_list}</p>{table}{figures}</body></html>"
    )
