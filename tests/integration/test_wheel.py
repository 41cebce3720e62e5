"""The project as users install it: a regular wheel, in a virtualenv outside the repository.

The wheel is built with `pip wheel` and installed with pip into a fresh venv in a temporary
directory; the already-installed dependencies are reused through a path file (they are
those of the CI virtualenv, resolved from the same pyproject ranges), so the test costs
seconds, not a 1.4 GB install. Every command runs with the temporary directory as its
working directory, so nothing can come from the checkout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    """(venv dir, wheel path): the wheel installed into a venv outside the repository."""
    root = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(root / "dist"), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = (root / "dist").glob("tau2_rollout-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    site = Path(
        subprocess.run(
            [str(venv / "bin/python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (site / "ci_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [str(venv / "bin/python"), "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return venv, wheel


def _run(venv: Path, args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_wheel_installs_only_the_rollout_package(wheel_env):
    _, wheel = wheel_env
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert top == {"rollout"}, top  # no top-level launch, conf or tests
    assert "rollout/defaults/defaults.yaml" in names and "rollout/env/aenv/module/src/tau2_rollout_env.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "tau2-rollout = rollout.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_wheel_runs_an_offline_episode_and_builds_the_areal_workflow(wheel_env, tmp_path):
    venv, _ = wheel_env
    p = _run(venv, ["tau2-rollout", "episode", "domain=airline", "task_id=12", "llm.scripted=oracle"], tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "reward: 1.0" in p.stdout
    code = (
        "import rollout, json; from rollout.areal import Tau2Agent; a = Tau2Agent(); "
        "print(json.dumps({'file': rollout.__file__, 'temperature': a.config().sampling.temperature}))"
    )
    p = _run(venv, [str(venv / "bin/python"), "-c", code], tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout)
    assert out["file"].startswith(str(venv)) and out["temperature"] == 1.0  # defaults found in the wheel


def test_wheel_runs_the_smoke_sweep(wheel_env, tmp_path):
    venv, _ = wheel_env
    p = _run(
        venv,
        ["tau2-rollout", "sweep", f"output_dir={tmp_path / 'run'}", "progress=false", "ray.num_cpus=2"],
        tmp_path,
        timeout=900,
    )
    assert p.returncode == 0, (p.stdout[-2000:], p.stderr[-3000:])
    lines = (tmp_path / "run" / "episodes.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 12 and all(r["reward"] == 1.0 for r in records)
