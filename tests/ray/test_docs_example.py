"""docs/pool.md's example runs as written: a fresh Python, a local Ray the pool starts, 64 episodes."""

import os
import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "pool.md"


def test_pool_example_runs_as_written(tmp_path):
    code = re.search(r"## Example.*?```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    env = {**os.environ, "RAY_ADDRESS": ""}
    env.pop("RAY_ADDRESS")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900, cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    groups = [line for line in p.stdout.splitlines() if line.startswith(("airline/", "retail/", "telecom/"))]
    assert len(groups) == 8  # 8 groups of 8, each complete
    assert "'boundaries_clean'" in p.stdout.splitlines()[-1]


def test_async_example_runs_as_written_through_ten_weight_updates():
    """docs/pool.md's asynchronous loop, run in this process so that the scripted server's
    generation log can be read after it: 10 weight updates, every trained episode scored and
    within the bound, none restarted from scratch (no stale group, no chat restart), calls cut
    by the swaps continued, and every completion token's version the one the server generated
    it under."""
    code = re.search(r"## Asynchronous training.*?```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    scope: dict = {}
    exec(compile(code, "docs/pool.md", "exec"), scope)
    model, trained, stats = scope["model"], scope["trained"], scope["stats"]
    assert scope["version"] == 10 and len(trained) == 10 * 4
    assert stats["stale_groups"] == 0 and stats["restarted_calls"] == 0 and stats["continued_calls"] >= 1
    log: dict = {}
    for g in model.generations:
        log.setdefault(g["episode"], []).append(g)
    for t in (t for group in trained for t in group):
        generated = log[t.result.episode_id]
        assert [i for g in generated for i in g["completion_ids"]] == [i for x in t.turns for i in x.completion_token_ids]
        served = [0 if v == "default" else int(v) for g in generated for v in g["versions"]]  # "default": the first weights
        assert [v for x in t.turns for v in x.completion_versions] == served
