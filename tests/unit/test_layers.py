"""The layering rule, read from the source: the environment side never imports the agent side."""

import ast
from pathlib import Path

ROLLOUT = Path(__file__).resolve().parents[2] / "rollout"
AGENT_SIDE = ("rollout.agent.turns", "rollout.agent.episode", "rollout.areal", "rollout.agent.command", "rollout.cli",
              "rollout.sweep", "rollout.bench")


def imported_modules(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def test_environment_side_never_imports_the_agent_side_or_the_sweep():
    offenders = {
        f"{path.relative_to(ROLLOUT.parent)} imports {module}"
        for path in (ROLLOUT / "env").rglob("*.py")
        for module in imported_modules(path)
        if any(module == side or module.startswith(side + ".") for side in AGENT_SIDE)
    }
    assert not offenders, sorted(offenders)


def test_the_rule_sees_imports_inside_functions(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from rollout.agent.episode import run_episode\n")
    assert "rollout.agent.episode" in imported_modules(probe)
