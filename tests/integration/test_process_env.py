"""Importing the library leaves the process as it was; the entry points apply the process defaults."""

import json
import os
import subprocess
import sys

from rollout.core.process_env import DEFAULTS

# a loguru record from a module named like tau2's: printed to stderr unless tau2's output is disabled
TAU2_PROBE = 'exec("from loguru import logger; logger.warning(\'tau2-probe\')", {"__name__": "tau2.probe"})'


def fresh_python(code: str, **env: str) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter whose environment has none of the defaults (plus `env`)."""
    base = {k: v for k, v in os.environ.items() if k not in DEFAULTS}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env={**base, **env})


def test_importing_the_library_changes_nothing():
    p = fresh_python(f"""
import json, os
before = dict(os.environ)
import rollout, rollout.areal, rollout.pool, rollout.sweep.run
{TAU2_PROBE}
changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
print(json.dumps(changed))
""")
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads(p.stdout.splitlines()[-1]) == []
    assert "tau2-probe" in p.stderr  # tau2's loguru output is still on


def test_the_cli_applies_the_defaults_and_keeps_what_is_set():
    p = fresh_python(
        f"""
import json, os
from rollout.cli import main
status = main(["dataset", "no_such_key=1"])
{TAU2_PROBE}
print(json.dumps({{"status": status, "env": {{k: os.environ.get(k) for k in {sorted(DEFAULTS)!r}}}}}))
""",
        RAY_USAGE_STATS_ENABLED="1",
    )
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.splitlines()[-1])
    assert out["status"] == 2 and out["env"] == {**DEFAULTS, "RAY_USAGE_STATS_ENABLED": "1"}
    assert "tau2-probe" not in p.stderr


def test_apply_defaults_quiets_tau2_and_sets_only_what_is_unset():
    p = fresh_python(
        f"""
import json, os
from rollout.core.process_env import apply_defaults
apply_defaults()
{TAU2_PROBE}
print(json.dumps({{k: os.environ.get(k) for k in {sorted(DEFAULTS)!r}}}))
""",
        FASTMCP_SHOW_CLI_BANNER="true",
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads(p.stdout.splitlines()[-1]) == {**DEFAULTS, "FASTMCP_SHOW_CLI_BANNER": "true"}
    assert "tau2-probe" not in p.stderr
