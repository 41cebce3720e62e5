"""The process environment defaults this project needs, in one place.

Offline and quiet: litellm's local cost map (no fetch at import), no `.env` loading by
tau2's import, no Agents SDK trace export, no Ray usage stats, no FastMCP update check or
banner. `apply_defaults()` sets each one only where it is unset; `child_env()` is the
environment for a process this project starts (Ray workers, aenv servers).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from types import MappingProxyType

DEFAULTS: Mapping[str, str] = MappingProxyType({
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "PYTHON_DOTENV_DISABLED": "1",
    "OPENAI_AGENTS_DISABLE_TRACING": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "FASTMCP_CHECK_FOR_UPDATES": "off",
    "FASTMCP_SHOW_CLI_BANNER": "false",
})


def apply_defaults(environ: MutableMapping[str, str] = os.environ) -> None:
    """Set every default that `environ` does not set already."""
    for key, value in DEFAULTS.items():
        environ.setdefault(key, value)


def child_env(extra: Mapping[str, str] = MappingProxyType({})) -> dict[str, str]:
    """The defaults plus `extra`: the variables to give a child process on top of its own."""
    return {**DEFAULTS, **extra}
