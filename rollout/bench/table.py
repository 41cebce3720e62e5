"""`python -m rollout.bench.table [bench.json] [--write DOC]`: the performance table (markdown) of a bench run.

One generator for docs/performance.md: the rows P1–P12 with what each measures, our figure,
the baseline from the same run, the ratio, the target and where the figure stands against it
(`render`), then P7's profile by component (`render_profile`). A row missing from the JSON is
listed as not measured. `tests/unit/test_bench_table.py` checks that docs/performance.md's
table, between `<!-- bench-table:start -->` and `<!-- bench-table:end -->`, is what this prints
for the committed bench.json; `--write docs/performance.md` rewrites that part of the document.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rollout.core.markers import replace_between_markers

MARKERS = "bench-table"  # docs/performance.md: <!-- bench-table:start --> ... :end -->
HEADER = ["id", "what", "ours", "baseline (same run)", "ratio", "target", "stands"]
MEETS, MISSES = "meets", "**misses**"


def _judged(target: str, ok: bool) -> list[str]:
    """The last two cells of a row: the target and where the figure stands against it."""
    return [target, MEETS if ok else MISSES]


def _pct(x: float) -> str:
    return f"{x * 100:.0f} %"


def _s(x: float) -> str:
    return f"{x:.3g} s" if x >= 0.01 else f"{x * 1000:.2g} ms"


def _p1(d: dict) -> list[list[str]]:
    rows = []
    for i, (domain, r) in enumerate(d.items()):
        what = ("environment-side time per episode, gold actions, zero-latency model: " if i == 0 else "… ") + domain
        rows.append(
            [
                "P1",
                what,
                _s(r["ours_s"]),
                f"AgentGymEnv {_s(r['baseline_s'])}",
                f"{r['speedup']:.3g}× lower",
                *_judged("≥ 100×", r["speedup"] >= 100),
            ]
        )
    return rows


def _p2(d: dict) -> list[list[str]]:
    rows = []
    for i, (n, r) in enumerate(sorted(d.items(), key=lambda kv: int(kv[0]))):
        what = (
            f"LLM-bound throughput, 200 ms per completion, {n} in flight (telecom, gold policy)" if i == 0 else f"… {n} in flight"
        )
        ours = f"{r['eps_per_s']:.3g} eps/s one process"
        frac = f"{_pct(r['fraction_of_ideal'])} of ideal"
        best = r["fraction_of_ideal"]
        if "ray_eps_per_s" in r:
            ours += f"; {r['ray_eps_per_s']:.3g} on Ray (2 workers)"
            frac += f" (Ray {_pct(r['ray_fraction_of_ideal'])})"
            best = r["ray_fraction_of_ideal"]
        if "aiohttp" in r:
            a = r["aiohttp"]
            ours += f"; aiohttp in place of fast_http {a['eps_per_s']:.3g}" + (
                f" / {a['ray_eps_per_s']:.3g} on Ray" if "ray_eps_per_s" in a else ""
            )
            frac += f"; aiohttp {a['eps_per_s'] / r['eps_per_s']:.3g}× fast_http" + (
                f" ({a['ray_eps_per_s'] / r['ray_eps_per_s']:.3g}× on Ray)" if "ray_eps_per_s" in a else ""
            )
        tau2 = r.get("tau2_runner_eps_per_s")
        base = f"ideal {r['ideal_eps_per_s']:.3g}"
        if "packing_bound_eps_per_s" in r:
            base += f" (the episodes' packing bound {r['packing_bound_eps_per_s']:.3g}, {_pct(r['packing_bound_of_ideal'])})"
        base += "; `tau2 run` " + (f"{tau2:.3g}" if tau2 else "failed")
        ratio = frac + (f"; {max(r['eps_per_s'], r.get('ray_eps_per_s', 0)) / tau2:.2g}× tau2's runner" if tau2 else "")
        ahead = bool(tau2) and max(r["eps_per_s"], r.get("ray_eps_per_s", 0)) > tau2
        goal = (
            _judged("≥ 85 % of ideal on Ray; ahead of tau2", best >= 0.85 and ahead)
            if int(n) >= 64
            else _judged("ahead of tau2", ahead)
        )
        rows.append(["P2", what, ours, base, ratio, *goal])
    return rows


def _p3(d: dict) -> list[list[str]]:
    o = d["overhead"]
    ratio = f"Ray {_pct(abs(o))} {'faster' if o < 0 else 'slower'}"
    return [
        [
            "P3",
            "the same episodes on Ray (2 workers) vs one process with plain asyncio",
            f"{d['ray_s']:.3g} s",
            f"{d['inprocess_s']:.3g} s",
            ratio,
            *_judged("≤ 10 % slower", o <= 0.10),
        ]
    ]


def _p4(d: dict) -> list[list[str]]:
    return [
        [
            "P4",
            f"memory per in-flight airline episode ({d.get('in_flight', '?')} in flight)",
            f"{d['mib_per_episode']:.3g} MiB",
            f"airline DB in memory {d['db_mib']:.3g} MiB",
            f"{d['ratio']:.2g}×",
            *_judged("≤ 1.2×", d["ratio"] <= 1.2),
        ]
    ]


def _p5(d: dict) -> list[list[str]]:
    return [
        [
            "P5",
            "aenv backend: start an episode on a reused instance",
            _s(d["reused_s"]),
            f"fresh aenv server {_s(d['fresh_s'])}",
            f"{d['speedup']:.3g}× faster",
            *_judged("≤ 0.3 s", d["reused_s"] <= 0.3),
        ]
    ]


_P6_METRICS = (  # (key, what, format, goal, limit on the ratio)
    ("s_per_episode", "sweep time per episode", lambda v: _s(v), "no faster than linear", 1.25),
    ("driver_peak_mib", "driver's peak RSS", lambda v: f"{v:.0f} MiB", "flat", 1.25),
    ("bytes_per_episode", "episodes.jsonl bytes per episode", lambda v: f"{v / 1024:.1f} KiB", "no faster than linear", 1.25),
    ("resume_s", "resume from a complete file (until it knows nothing is left)", lambda v: _s(v), "seconds", None),
    ("summary_s_per_episode", "summary build per episode", lambda v: _s(v), "no faster than linear", 1.25),
    ("report_s_per_episode", "report build per episode", lambda v: _s(v), "no faster than linear", 1.25),
)


def _p6(d: dict) -> list[list[str]]:
    sizes = sorted(d["sizes"], key=int)
    lo, hi = d["sizes"][sizes[0]], d["sizes"][sizes[-1]]
    rows = []
    for i, (key, what, fmt, goal, limit) in enumerate(_P6_METRICS):
        head = f"sweeps of {', '.join(f'{int(s):,}' for s in sizes)} episodes ({d['domain']}, noop, zero latency): "
        growth = f"for {int(sizes[-1]) / int(sizes[0]):.3g}× the episodes"
        if limit is None:  # resume: seconds at the largest size
            ok = hi[key] < 10
            ratio = f"{hi[key] / lo[key]:.2g}× {growth}"
        else:
            r = d["ratios"].get(key)
            ok = r is not None and r <= limit
            ratio = "-" if r is None else f"{r:.2g}× " + ("per episode" if "episode" in key else growth)
        rows.append(
            [
                "P6",
                (head if i == 0 else "… ") + what,
                f"{fmt(hi[key])} at {int(sizes[-1]):,}",
                f"{fmt(lo[key])} at {int(sizes[0]):,}",
                ratio,
                *_judged(f"{goal}", ok),
            ]
        )
    if "no_transcripts" in d:
        nt = d["no_transcripts"]
        rows.append(
            [
                "P6",
                "… episodes.jsonl bytes per episode with `transcripts=false`",
                f"{nt['bytes_per_episode'] / 1024:.1f} KiB at {nt['episodes']:,}",
                f"{lo['bytes_per_episode'] / 1024:.1f} KiB with transcripts",
                f"{lo['bytes_per_episode'] / nt['bytes_per_episode']:.2g}× smaller",
                *_judged("smaller without transcripts", nt["bytes_per_episode"] < lo["bytes_per_episode"]),
            ]
        )
    return rows


def _p7(d: dict) -> list[list[str]]:
    rows = []
    goal = d.get("goal_ms", 3.0)
    for i, (domain, levels) in enumerate(d["domains"].items()):
        what = (
            f"rollout CPU per completion (agent + user simulator), zero-latency model, in flight {'/'.join(levels)}: "
            if i == 0
            else "… "
        ) + domain
        ours = " / ".join(f"{c['rollout_ms']:.3g}" for c in levels.values()) + " ms"
        server = " / ".join(f"{c['server_ms']:.3g}" for c in levels.values()) + " ms"
        worst = max(c["rollout_ms"] for c in levels.values())
        ratio = f"{worst / goal:.2g}× the goal"
        if all("aiohttp" in c for c in levels.values()):
            ours += "; aiohttp in place of fast_http " + " / ".join(f"{c['aiohttp']['rollout_ms']:.3g}" for c in levels.values())
            aio = sorted(c["aiohttp"]["rollout_ms"] / c["rollout_ms"] for c in levels.values())
            spread = f"{aio[0]:.3g}" if f"{aio[0]:.3g}" == f"{aio[-1]:.3g}" else f"{aio[0]:.3g}–{aio[-1]:.3g}"
            ratio += f"; aiohttp {spread}× fast_http"
        rows.append(
            ["P7", what, ours, f"scripted server (own process) {server}", ratio, *_judged(f"≤ {goal:g} ms", worst <= goal)]
        )
    return rows


def _p8(d: dict) -> list[list[str]]:
    rows = []
    cpu, goal = d["cpu"], d["cpu"].get("goal_ratio", 1.1)
    for i, (domain, r) in enumerate(cpu["domains"].items()):
        what = (
            f"training path: rollout CPU per completion through `Tau2Agent.run` (AReaL's inline mode, "
            f"{cpu['in_flight']} in flight): "
            if i == 0
            else "… "
        ) + domain
        t, s = r["training"], r["sweep"]
        rows.append(
            [
                "P8",
                what,
                f"{t['rollout_ms_per_completion']:.3g} ms ({t['rollout_ms_per_episode']:.3g} ms/episode)",
                f"sweep path {s['rollout_ms_per_completion']:.3g} ms ({s['rollout_ms_per_episode']:.3g} ms/episode)",
                f"{r['ratio']:.3g}×",
                *_judged(f"≤ {goal:g}×", r["ratio"] <= goal),
            ]
        )
    a = d["aenv_start"]
    rows.append(
        [
            "P8",
            "… aenv backend: episode start through `Tau2Agent.run` after the first",
            _s(a["later_start_s"]),
            f"fresh aenv server per episode {_s(a['fresh_server_s'])}",
            f"{a['speedup']:.3g}× faster",
            *_judged(f"≤ {a['goal_s']:g} s", a["later_start_s"] <= a["goal_s"]),
        ]
    )
    return rows


def _p9(d: dict) -> list[list[str]]:
    rows = []
    for i, (n, r) in enumerate(d["in_flight"].items()):
        what = (
            f"HTTP client CPU per chat request (~{d['body_bytes'] // 1024} KB airline body), {n} in flight"
            if i == 0
            else f"… {n} in flight"
        )
        cpu, ratio = r["cpu_ms"], r["ratio_to_fast_http"]
        base = "; ".join(f"{k} {cpu[k]:.3g} ms" for k in ("httpx", "aiohttp", "openai"))
        best = min(ratio[k] for k in ("httpx", "aiohttp", "openai"))
        rows.append(
            [
                "P9",
                what,
                f"fast_http {cpu['fast_http']:.3g} ms",
                base,
                " / ".join(f"{ratio[k]:.2g}×" for k in ("httpx", "aiohttp", "openai")) + " the CPU",
                *_judged("keep it only if no library is close", best > 1.25),
            ]
        )
    return rows


def _p10(d: dict) -> list[list[str]]:
    rows = []
    cap = d["capture"]
    for i, (n, r) in enumerate(cap["levels"].items()):
        what = (
            f"rollout pool, token capture on vs off: throughput at {n} in flight ({r['latency_s']:g} s per "
            f"completion; airline, retail, telecom in groups of 8; 2 Ray workers)"
            if i == 0
            else f"… {n} in flight ({r['latency_s']:g} s per completion)"
        )
        on, off = r["on"], r["off"]
        rows.append(
            [
                "P10",
                what,
                f"{on['eps_per_s']:.3g} eps/s, rollout CPU {on['rollout_ms_per_completion']:.3g} ms/completion",
                f"capture off {off['eps_per_s']:.3g} eps/s, {off['rollout_ms_per_completion']:.3g} ms/completion",
                f"{r['throughput_ratio']:.3g}× the throughput, {r['cpu_ratio']:.3g}× the CPU",
                *_judged(
                    f"≥ {cap['goal_throughput_ratio']:g}× the throughput", r["throughput_ratio"] >= cap["goal_throughput_ratio"]
                ),
            ]
        )
    g = d["stream_groups"]
    rows.append(
        [
            "P10",
            f"… driver CPU per episode handed back, `stream_groups` vs `run` ({g['in_flight']} in flight, capture on)",
            f"{g['stream_groups']['driver_ms_per_episode']:.3g} ms",
            f"`run` {g['run']['driver_ms_per_episode']:.3g} ms",
            f"{g['driver_ratio']:.3g}×",
            *_judged("≤ 1.25×", g["driver_ratio"] <= 1.25),
        ]
    )
    return rows


def _p11(d: dict) -> list[list[str]]:
    rows = []
    goals = d["goals"]
    for i, (name, r) in enumerate(d["templates"].items()):
        what = (
            f"token-in vs chat capture through the pool, {d['in_flight']} in flight ({d['latency_s']:g} s per completion): {name}"
            if i == 0
            else f"… {name}"
        )
        ti, chat = r["token_in"], r["token_ids"]
        ok = (
            r["throughput_ratio"] >= goals["throughput_ratio"]
            and r["cpu_ratio"] <= goals["cpu_ratio"]
            and ti["split_per_1000"] <= goals["token_in_split_per_1000"]
        )
        rows.append(
            [
                "P11",
                what,
                f"{ti['eps_per_s']:.3g} eps/s, {ti['rollout_ms_per_completion']:.3g} ms/completion, "
                f"{ti['split_per_1000']:.0f} splits per 1,000 boundaries",
                f"chat {chat['eps_per_s']:.3g} eps/s, {chat['rollout_ms_per_completion']:.3g} ms/completion, "
                f"{chat['split_per_1000']:.0f} splits per 1,000",
                f"{r['throughput_ratio']:.3g}× the throughput, {r['cpu_ratio']:.3g}× the CPU",
                *_judged(
                    f"≥ {goals['throughput_ratio']:g}×, CPU ≤ {goals['cpu_ratio']:g}×, 0 splits",
                    ok,
                ),
            ]
        )
    return rows


def _p12(d: dict) -> list[list[str]]:
    a, s = d["async"], d["sync"]
    what = (
        f"asynchronous training vs a synchronous barrier: {d['groups_per_step']} groups of {d['group']} per step, "
        f"{d['in_flight']} in flight, {d['ahead_groups']} groups ahead, max_staleness {d['max_staleness']}, "
        f"{d['train_s']:g} s training per step"
    )
    return [
        [
            "P12",
            what,
            f"{a['episodes_per_hour']:,.0f} trained episodes/h; {a['continued_calls']:.0f} calls aborted and continued, "
            f"{a['stale_groups']:.0f} groups dropped for staleness, staleness ≤ {a['max_staleness_seen']:.0f}",
            f"sync {s['episodes_per_hour']:,.0f} episodes/h",
            f"{d['ratio']:.3g}×",
            *_judged(f"≥ {d['goal']:g}×", d["ratio"] >= d["goal"]),
        ]
    ]


ROWS = {
    "P1": _p1,
    "P2": _p2,
    "P3": _p3,
    "P4": _p4,
    "P5": _p5,
    "P6": _p6,
    "P7": _p7,
    "P8": _p8,
    "P9": _p9,
    "P10": _p10,
    "P11": _p11,
    "P12": _p12,
}


def render(bench: dict) -> str:
    """The markdown table for a bench.json object."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for row_id, fn in ROWS.items():
        rows = fn(bench[row_id]) if row_id in bench else [[row_id, "not measured in this bench.json", *["-"] * 5]]
        lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines) + "\n"


def render_profile(bench: dict) -> str:
    """P7's profile: each component's share of the rollout process's CPU, per domain (markdown)."""
    p7 = bench.get("P7")
    if not p7:
        return "P7's profile: not measured in this bench.json.\n"
    domains = list(p7["profile"])
    lines = [
        "| component | " + " | ".join(f"{d} (in flight {p7['profile'][d]['in_flight']})" for d in domains) + " |",
        "|---|" + "---|" * len(domains),
    ]
    for comp, what in p7["components"].items():
        lines.append(f"| {what} | " + " | ".join(_pct(p7["profile"][d]["share"].get(comp, 0.0)) for d in domains) + " |")
    return "\n".join(lines) + "\n"


def generated(bench: dict) -> str:
    """What goes between the markers: the table, then P7's profile."""
    return render(bench) + "\n" + render_profile(bench)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m rollout.bench.table", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("bench_json", nargs="?", default="bench.json")
    p.add_argument("--write", metavar="DOC", help="rewrite the table between the markers of DOC (e.g. README.md)")
    a = p.parse_args(argv)
    table = generated(json.loads(Path(a.bench_json).read_text()))
    if a.write:
        doc = Path(a.write)
        doc.write_text(replace_between_markers(doc.read_text(), MARKERS, table))
        print(f"wrote the table into {doc}")
    else:
        print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
