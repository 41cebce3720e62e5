"""The performance table of docs/performance.md is what rollout.bench.table generates from bench.json."""

import json
from pathlib import Path

import pytest

from rollout.bench.table import MARKERS, MEETS, MISSES, generated, render
from rollout.core.markers import between_markers, replace_between_markers

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.unit


@pytest.mark.parametrize("doc", ["docs/performance.md"])
def test_docs_table_is_generated_from_bench_json(doc):
    bench = json.loads((ROOT / "bench.json").read_text())
    in_docs = between_markers((ROOT / doc).read_text(), MARKERS)
    assert in_docs is not None, f"{doc} lacks the <!-- bench-table:start/end --> markers"
    assert in_docs == generated(bench), f"regenerate: python -m rollout.bench.table bench.json --write {doc}"


ROW_IDS = [f"P{i}" for i in range(1, 13)]


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_every_row_is_listed_and_judged_against_its_target():
    bench = json.loads((ROOT / "bench.json").read_text())
    rows = [cells(line) for line in render(bench).splitlines()[2:]]
    assert {r[0] for r in rows} == set(ROW_IDS)
    for r in rows:
        if r[0] in bench:
            assert r[6] in (MEETS, MISSES) and r[5] not in ("", "-"), r
        else:
            assert r[1] == "not measured in this bench.json", r


def test_replace_between_markers_keeps_the_rest():
    doc = "intro\n<!-- bench-table:start -->\nold\n<!-- bench-table:end -->\noutro\n"
    new = replace_between_markers(doc, "bench-table", "| new |\n")
    assert new == "intro\n<!-- bench-table:start -->\n| new |\n<!-- bench-table:end -->\noutro\n"
    assert between_markers(new, "bench-table") == "| new |\n"


def _size(n: int, s_per_episode: float, peak: float) -> dict:
    return {
        "episodes": n,
        "driver_peak_mib": peak,
        "driver_run_peak_mib": peak,
        "resume_peak_mib": peak,
        "wall_s": n * s_per_episode,
        "resume_s": 0.5,
        "summary_s": 0.001 * n,
        "report_s": 0.01 * n,
        "s_per_episode": s_per_episode,
        "bytes_per_episode": 2400.0,
        "dir_bytes_per_episode": 12000.0,
        "resume_s_per_episode": 0.5 / n,
        "resume_total_s_per_episode": 1 / n,
        "summary_s_per_episode": 0.001,
        "report_s_per_episode": 0.01,
    }


def test_p6_and_p7_rows_and_profile():
    p6 = {"domain": "airline", "sizes": {"1000": _size(1000, 0.05, 400.0), "20000": _size(20000, 0.05, 900.0)}}
    p6["ratios"] = {
        k: p6["sizes"]["20000"][k] / p6["sizes"]["1000"][k]
        for k in ("s_per_episode", "driver_peak_mib", "bytes_per_episode", "summary_s_per_episode", "report_s_per_episode")
    }
    share = {"agents_sdk": 0.5, "http_client": 0.5}
    p7 = {
        "goal_ms": 3.0,
        "components": {"agents_sdk": "Agents SDK", "http_client": "HTTP client"},
        "domains": {
            d: {"1": {"rollout_ms": 2.5, "server_ms": 1.0}, "8": {"rollout_ms": ms, "server_ms": 1.2}}
            for d, ms in (("airline", 2.9), ("retail", 4.0))
        },
        "profile": {d: {"in_flight": 8, "share": share} for d in ("airline", "retail")},
    }
    table = render({"P6": p6, "P7": p7}).splitlines()
    p6_rows = [cells(r) for r in table if r.startswith("| P6 |")]
    assert len(p6_rows) == 6
    assert p6_rows[1][5:] == ["flat", MISSES]  # 400 -> 900 MiB is not flat
    assert all(r[6] == MEETS for i, r in enumerate(p6_rows) if i != 1)
    p7_rows = [cells(r) for r in table if r.startswith("| P7 |")]
    assert [r[5:] for r in p7_rows] == [["≤ 3 ms", MEETS], ["≤ 3 ms", MISSES]]
    assert p7_rows[1][2] == "2.5 / 4 ms"
    profile = generated({"P7": p7}).split("\n\n", 1)[1]
    assert "| Agents SDK | 50 % | 50 % |" in profile


def test_p10_rows_judge_throughput_with_capture_and_stream_groups_cost():
    def level(ratio):
        return {
            "on": {"eps_per_s": 5.0 * ratio, "rollout_ms_per_completion": 4.0, "driver_ms_per_episode": 9.0},
            "off": {"eps_per_s": 5.0, "rollout_ms_per_completion": 3.0, "driver_ms_per_episode": 2.0},
            "throughput_ratio": ratio,
            "cpu_ratio": 1.33,
            "latency_s": 0.5,
        }

    p10 = {
        "capture": {"goal_throughput_ratio": 0.9, "levels": {"64": level(0.95), "256": level(0.85)}},
        "stream_groups": {
            "in_flight": 64,
            "run": {"driver_ms_per_episode": 5.0},
            "stream_groups": {"driver_ms_per_episode": 5.5},
            "driver_ratio": 1.1,
        },
    }
    rows = [cells(r) for r in render({"P10": p10}).splitlines() if r.startswith("| P10 |")]
    assert [r[5:] for r in rows] == [["≥ 0.9× the throughput", MEETS], ["≥ 0.9× the throughput", MISSES], ["≤ 1.25×", MEETS]]
    assert rows[0][4] == "0.95× the throughput, 1.33× the CPU"


def test_p12_row_judges_async_over_sync_and_shows_continued_calls_and_stale_groups():
    def p12(ratio):
        mode = {"episodes_per_hour": 10000.0, "continued_calls": 104, "stale_groups": 1, "max_staleness_seen": 2}
        return {
            "async": dict(mode, episodes_per_hour=10000.0 * ratio),
            "sync": dict(mode, continued_calls=0, stale_groups=0, max_staleness_seen=0),
            "ratio": ratio,
            "goal": 2.0,
            **{"group": 8, "groups_per_step": 8, "in_flight": 64, "ahead_groups": 16, "max_staleness": 2, "train_s": 8.0},
        }

    meets, misses = ([cells(r) for r in render({"P12": p12(x)}).splitlines() if r.startswith("| P12 |")][0] for x in (2.17, 1.5))
    assert meets[5:] == ["≥ 2×", MEETS] and misses[5:] == ["≥ 2×", MISSES]
    assert "104 calls aborted and continued, 1 groups dropped for staleness" in meets[2]
    assert meets[3] == "sync 10,000 episodes/h" and meets[4] == "2.17×"
