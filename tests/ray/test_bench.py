"""The benchmark runs end to end at tiny sizes and writes the JSON scripts read (no timing asserted)."""

import json
import os
import subprocess
import sys


def test_bench_quick_writes_its_json(tmp_path):
    out = tmp_path / "bench.json"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    p = subprocess.run(
        [sys.executable, "-m", "rollout", "bench", "quick=true", f"out={out}"],
        capture_output=True,
        text=True,
        timeout=1800,
        env=env,
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    report = json.loads(out.read_text())
    for domain in ("airline", "retail", "telecom"):
        assert set(report["P1"][domain]) == {"ours_s", "baseline_s", "speedup"}
    for row in report["P2"].values():
        assert {"eps_per_s", "ideal_eps_per_s", "fraction_of_ideal", "tau2_runner_eps_per_s"} <= set(row)
        assert 0 < row["packing_bound_eps_per_s"] <= row["ideal_eps_per_s"]
        assert row["aiohttp"]["eps_per_s"] > 0 and row["aiohttp"]["ray_eps_per_s"] > 0  # the same episodes over aiohttp
    assert {"ray_s", "inprocess_s", "overhead"} <= set(report["P3"])
    assert {"mib_per_episode", "db_mib", "ratio"} <= set(report["P4"])
    assert {"reused_s", "fresh_s"} <= set(report["P5"])
    p6 = report["P6"]
    assert set(p6["sizes"]) == {"4", "8"} and all(s["episodes"] == int(n) for n, s in p6["sizes"].items())
    for size in p6["sizes"].values():
        assert size["bytes_per_episode"] > 0 and size["driver_peak_mib"] > 0 and size["resume_s"] > 0
    assert {"s_per_episode", "driver_peak_mib", "bytes_per_episode", "resume_s_per_episode"} <= set(p6["ratios"])
    for domain in ("airline", "retail", "telecom"):
        for cell in report["P7"]["domains"][domain].values():
            assert cell["rollout_ms"] > 0 and cell["server_ms"] > 0 and cell["completions"] > 0
            assert cell["aiohttp"]["rollout_ms"] > 0 and cell["aiohttp"]["completions"] == cell["completions"]
        assert abs(sum(report["P7"]["profile"][domain]["share"].values()) - 1) < 0.02
    p8 = report["P8"]
    assert p8["cpu"]["domains"]["telecom"]["training"]["rollout_ms_per_completion"] > 0
    assert p8["cpu"]["domains"]["telecom"]["sweep"]["rollout_ms_per_completion"] > 0
    assert 0 < p8["aenv_start"]["later_start_s"] < p8["aenv_start"]["fresh_server_s"]
    assert all(c["cpu_ms"]["fast_http"] > 0 and c["cpu_ms"]["httpx"] > 0 for c in report["P9"]["in_flight"].values())
    p10 = report["P10"]
    for level in p10["capture"]["levels"].values():
        assert level["on"]["eps_per_s"] > 0 and level["off"]["eps_per_s"] > 0 and level["capture"]["captured"] > 0
        assert level["capture"]["captured"] == level["capture"]["calls"]  # every policy call's tokens, on
    assert p10["stream_groups"]["run"]["driver_ms_per_episode"] > 0
    p11 = report["P11"]
    for row in p11["templates"].values():
        assert row["token_in"]["eps_per_s"] > 0 and row["token_ids"]["eps_per_s"] > 0 and row["token_in"]["boundaries"] > 0
        assert row["token_in"]["split_per_1000"] == 0.0  # token-in: every episode one sequence
    assert p11["templates"]["qwen3_thinking"]["token_ids"]["split_per_1000"] > 0  # chat capture splits there
    p12 = report["P12"]
    assert p12["async"]["episodes"] > 0 and p12["sync"]["episodes"] > 0 and p12["ratio"] > 0
    assert p12["async"]["max_staleness_seen"] <= p12["max_staleness"]
    assert {"cpus", "memory_gib", "date"} <= set(report["machine"])
    for row in ("P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8", "P9", "P10", "P11", "P12"):
        assert f"{row}: " in p.stdout  # printed as it goes
    table = subprocess.run(
        [sys.executable, "-m", "rollout.bench.table", str(out)], capture_output=True, text=True, check=True
    ).stdout
    assert (
        p6["no_transcripts"]["episodes"] == 4
        and 0 < p6["no_transcripts"]["bytes_per_episode"] < p6["sizes"]["4"]["bytes_per_episode"]
    )
    assert "not measured" not in table and table.count("| P6 |") == 7 and table.count("| P7 |") == 3
    assert table.count("| P8 |") == 2 and table.count("| P9 |") == 2 and table.count("| P10 |") == 2
    assert table.count("| P11 |") == len(p11["templates"])
