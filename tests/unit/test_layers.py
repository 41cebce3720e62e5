"""The layers, read from the source: what each package of `rollout` may import of the project.

An allow-list per package (absolute and relative imports, at any depth, inside functions too):
a package not listed, a module at the top level other than the entry points, or an import of a
package not allowed for the importer fails the test.
"""

import ast
from pathlib import Path

import pytest

ROLLOUT = Path(__file__).resolve().parents[2] / "rollout"
pytestmark = pytest.mark.unit

# package -> the project packages it may import (besides itself), lowest layer first
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "env": {"core"},
    "trajectory": {"core"},
    "scripted": {"core", "env"},
    "agent": {"core", "env"},
    "areal": {"core", "env", "agent"},
    "pool": {"core", "env", "agent", "trajectory"},
    "sweep": {"core", "env", "agent", "trajectory", "pool"},
    "trainers": {"core", "trajectory", "pool"},
    "bench": {"core", "env", "trajectory", "scripted", "agent", "areal", "pool", "sweep"},
}
ALLOWED["commands"] = set(ALLOWED)  # the top floor: the CLI's commands may import any layer
# what ships to trainers and sweeps: none of it stands on the test double (scripted/), which the commands and the bench start
PRODUCT = ("core", "env", "trajectory", "agent", "areal", "pool", "sweep", "trainers")
ENTRY_POINTS = {"__init__", "__main__", "cli"}  # top-level modules; cli.py may import any package
RESOURCES = {"defaults"}  # package data, no code


def absolute_module(path: Path, node: ast.ImportFrom) -> str:
    """The absolute module name of a (possibly relative) `from ... import` in `path`."""
    if node.level == 0:
        return node.module or ""
    parts = list(path.relative_to(ROLLOUT.parent).with_suffix("").parts)
    base = parts[: -node.level] if path.name != "__init__.py" else parts[: len(parts) - node.level]
    return ".".join(base + ([node.module] if node.module else []))


def project_imports(path: Path) -> set[str]:
    """The `rollout.*` modules `path` imports."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = absolute_module(path, node)
            out.add(module)
            if module == "rollout":  # `from rollout import core`
                out.update(f"rollout.{a.name}" for a in node.names)
    return {m for m in out if m == "rollout" or m.startswith("rollout.")}


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def violations(root: Path = ROLLOUT) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if len(rel.parts) == 1:
            if path.stem not in ENTRY_POINTS:
                found.append(f"{rel}: a module at the top level (put it in the package of its layer)")
            continue
        package = rel.parts[0]
        if package in RESOURCES:
            continue
        if package not in ALLOWED:
            found.append(f"{rel}: package '{package}' has no entry in the layer allow-list")
            continue
        for module in project_imports(path):
            target = package_of(module)
            if module != "rollout" and target != package and target not in ALLOWED[package]:
                found.append(f"{rel} imports {module}: '{package}' may import {sorted(ALLOWED[package]) or 'nothing'}")
    return found


def test_every_package_imports_only_the_layers_below_it():
    assert not violations(), "\n".join(violations())


def test_no_product_layer_stands_on_the_test_double_or_a_command():
    assert [p for p in PRODUCT if ALLOWED[p] & {"scripted", "commands"}] == []
    assert [p for p in ALLOWED if p != "commands" and "commands" in ALLOWED[p]] == []


def test_the_rule_catches_upward_relative_and_in_function_imports_and_stray_modules(tmp_path):
    root = tmp_path / "rollout"
    for package in ("core", "scripted", "sweep", "env", "agent", "commands"):
        (root / package).mkdir(parents=True)
    (root / "core" / "x.py").write_text("def f():\n    from rollout.agent.episode import run_episode\n")
    (root / "scripted" / "y.py").write_text("from ..sweep import run\n")
    (root / "env" / "z.py").write_text("from rollout import core\nfrom . import other\nimport rollout\n")
    (root / "agent" / "w.py").write_text("def f():\n    from rollout.scripted import ScriptedServer\n")
    (root / "sweep" / "v.py").write_text("from rollout.commands import episode\n")
    (root / "commands" / "u.py").write_text("from rollout.scripted import ScriptedServer\nfrom rollout.bench import bench\n")
    (root / "agent_loop.py").write_text("")
    (root / "newpkg").mkdir()
    (root / "newpkg" / "m.py").write_text("")
    global ROLLOUT
    saved, ROLLOUT = ROLLOUT, root
    try:
        found = violations(root)
    finally:
        ROLLOUT = saved
    assert any("core/x.py imports rollout.agent.episode" in v for v in found)
    assert any("scripted/y.py imports rollout.sweep" in v for v in found)
    assert any("agent/w.py imports rollout.scripted" in v for v in found)
    assert any("sweep/v.py imports rollout.commands" in v for v in found)
    assert not any("commands/u.py" in v for v in found)  # the top floor stands on everything
    assert any("agent_loop.py: a module at the top level" in v for v in found)
    assert any("package 'newpkg'" in v for v in found)
    assert not any("env/z.py" in v for v in found)  # core is below env; `from . import` stays inside
