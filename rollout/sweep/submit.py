"""A sweep as a Ray job: the job built and checked here, before the cluster is contacted.

`build_job(overrides, working_dir, pip)` is the job's (entrypoint, runtime_env): `python -m
rollout sweep ray.address=auto key=value ...` with this directory as the working dir and the
offline/quiet environment variables, after `validate` has checked the sweep exactly as
`tau2-rollout sweep` would (for a cluster: a literal API key is refused, since Ray records a
job's entrypoint and runtime_env; no key file may sit inside the uploaded working directory).
`config_overrides(files)` turns `--config` files into overrides; `submit_job` submits through a
`JobSubmissionClient`; `job_outcome` waits for a job's end: its status and the sweep's exit status.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from pathlib import Path

from rollout.core.config import check_secrets, key_sections, shown
from rollout.core.failures import InvalidInput
from rollout.core.process_env import child_env
from rollout.sweep.config import SweepConfig
from rollout.sweep.plan import plan_requests

TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


def config_overrides(files: list[str]) -> list[str]:
    """The keys of YAML config files as `key=value` overrides (values as JSON, which the
    overrides' YAML reads back as they were), in file order. Raises InvalidInput."""
    from omegaconf import OmegaConf

    from rollout.core.config import _load_yaml

    out: list[str] = []

    def flatten(node, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                flatten(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix[:-1]}={json.dumps(node)}")

    for path in files:
        flatten(OmegaConf.to_container(_load_yaml(Path(path)), resolve=False), "")
    return out


def validate(overrides: list[str], *, working_dir: str = ".") -> SweepConfig:
    """The sweep config the job will run, validated here as `tau2-rollout sweep` would (for a
    cluster: a literal key is refused), its plan checked, and no key file inside the working
    directory. Raises InvalidInput."""
    from rollout.sweep.run import prepare, sweep_pool

    cfg, _ = prepare(["ray.address=auto", *overrides], local=False)
    check_secrets(cfg, remote=True)  # the job goes to the cluster whatever `ray.address` the overrides set
    with sweep_pool(cfg) as pool:  # the pool's settings and every episode, as the job's pool checks them
        pool.check(plan_requests(cfg))
    root = Path(working_dir).resolve()
    for name, section in key_sections(cfg):
        if section.api_key_file:
            path = (root / Path(section.api_key_file).expanduser()).resolve()
            if path == root or root in path.parents:
                raise InvalidInput(
                    f"{name}.api_key_file {shown(section.api_key_file)} is inside the working directory "
                    f"{shown(str(root))}, which is uploaded to the cluster with the job: keep key files "
                    f"outside it (on every node), or use {name}.api_key_env"
                )
    return cfg


def build_job(overrides: list[str], *, working_dir: str = ".", pip: bool = False) -> tuple[str, dict]:
    """(entrypoint, runtime_env) for a sweep job, after `validate`. Raises InvalidInput: neither
    the entrypoint nor the runtime_env (both shown in Ray's job table) may hold a key."""
    validate(overrides, working_dir=working_dir)
    args = list(overrides)
    if not any(a.startswith("ray.address=") for a in args):
        args.insert(0, "ray.address=auto")
    entrypoint = " ".join(["python", "-m", "rollout", "sweep", *map(shlex.quote, args)])
    runtime_env = {"working_dir": working_dir, "env_vars": child_env()}
    if pip:
        runtime_env["pip"] = job_requirements()
    return entrypoint, runtime_env


def job_requirements() -> list[str]:
    """The project's own dependency ranges (from its installed metadata: pyproject.toml is the one
    source), without extras and without Ray, which the cluster already runs."""
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    out = []
    for line in requires("tau2-rollout") or []:
        req = Requirement(line)
        if req.marker is None and req.name != "ray":
            out.append(str(req))
    return out


def submit_job(client, entrypoint: str, runtime_env: dict, wait_s: float = 120.0) -> str:
    """Submit, waiting while a freshly started head has no job agent yet ("No available agent")
    or drops the connection (a busy dashboard). The submission id is fixed up front, so a
    retry after a submission that did go through finds the job instead of starting a second."""
    import uuid

    submission_id = f"tau2-rollout-{uuid.uuid4().hex[:12]}"
    deadline = time.monotonic() + wait_s
    retried = False
    while True:
        try:
            return client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env, submission_id=submission_id)
        except RuntimeError as e:
            if retried and "already exists" in str(e):
                return submission_id
            if "No available agent" not in str(e) or time.monotonic() > deadline:
                raise
        except OSError:  # requests' ConnectionError: the dashboard closed the connection
            if time.monotonic() > deadline:
                raise
        retried = True
        time.sleep(2)


def job_outcome(client, job_id: str, wait_s: float = 60.0) -> tuple[str, int]:
    """(the job's status once terminal, or as it stands after `wait_s`; the sweep's exit status:
    0 for a job that succeeded, else the exit code in Ray's message, or 1 without one)."""
    status = _status(client.get_job_status(job_id))
    deadline = time.monotonic() + wait_s
    while status not in TERMINAL and time.monotonic() < deadline:
        time.sleep(1)
        status = _status(client.get_job_status(job_id))
    if status == "SUCCEEDED":
        return status, 0
    message = getattr(client.get_job_info(job_id), "message", "") or ""
    code = re.search(r"exit code (\d+)", message)
    return status, int(code.group(1)) if code else 1


def _status(status) -> str:
    return str(status.value if hasattr(status, "value") else status)
