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
