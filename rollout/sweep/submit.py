"""`tau2-rollout submit [address=URL] [working_dir=DIR] [pip=true] [wait=false] [--config FILE ...] -- key=value ...`

Submits `python -m rollout sweep ray.address=auto key=value ...` as a Ray job (what
`ray job submit --working-dir . -- python -m rollout sweep ...` does), with the runtime
environment the sweep needs: this directory as the working dir, and the offline/quiet
environment variables. Streams the job's output and exits with the sweep's exit status
(0 every planned episode scored, 3 some not; see `tau2-rollout sweep --help`).

As with `ray job submit`, `--` separates the submission from the job: before it, submit's own
keys; after it, the sweep's keys, exactly as `tau2-rollout sweep` takes them.

  address      the cluster's dashboard / jobs API (default: $RAY_ADDRESS, else http://127.0.0.1:8265)
  working_dir  uploaded as the job's working directory (default: .)
  pip          true: Ray installs this project's dependencies into the job's environment
  wait         false: print the job id and return at once (default: stream the job's output)

    tau2-rollout submit address=http://head:8265 -- domains=[retail] num_samples=8 llm.base_url=...

Before the cluster is contacted, the sweep is validated here exactly as `tau2-rollout sweep`
validates it (unknown keys such as `llm.apikey`, wrong types, sizes, domains, task ids,
splits): a mistake is one line and exit 2, and nothing is submitted. `--config FILE`
(repeatable, on either side of `--`) is read here and its keys go to the job with the
overrides.

API keys: Ray records a job's entrypoint and runtime_env (dashboard /api/jobs/, `ray job
list`, its logs), so a literal key (`llm.api_key=K`, `llm={api_key: K}`, in a --config file,
...) is refused. Pass the NAME of an environment variable instead, `llm.api_key_env=MY_KEY`
(likewise `user_llm.` and `env.aenv.`), set on every node before `ray start` (Ray's processes
inherit the raylet's environment), or a file present on every node, `llm.api_key_file=/path`
outside the working directory (a key file inside it would be uploaded with it, and is
refused). Without either, the standard variables (OPENAI_API_KEY, TAU2_USER_LLM_API_KEY,
AENV_API_KEY) are read the same way, by the job.

The cluster's nodes must have this project's dependencies installed (same image or
`pip install -e .`); `pip=true` asks Ray to install them into the job's environment instead.
Give `output_dir` as an absolute path on storage the head node keeps: the working dir is
temporary.

Exit status: 2 bad input here (nothing submitted); 130 interrupted here (the job is stopped);
otherwise the sweep's own (0, 1, 2, 3, 130; see `tau2-rollout sweep --help`), or 1 for a job
that failed without one. With `wait=false`: 0 once the job is submitted.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from rollout.core.command import CommandArgs, parse_args, split_config_files
from rollout.core.config import check_secrets, key_sections, shown
from rollout.core.failures import InvalidInput
from rollout.core.process_env import child_env
from rollout.sweep.config import SweepConfig
from rollout.sweep.plan import plan_requests

TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
DEFAULT_ADDRESS = "http://127.0.0.1:8265"


@dataclass
class SubmitArgs(CommandArgs):
    """submit's own keys, before `--` (see module doc)."""

    address: Optional[str] = None
    working_dir: str = "."
    pip: bool = False
    wait: bool = True


def parse_command(argv: list[str]) -> tuple[SubmitArgs, list[str]]:
    """(submit's own keys, the sweep's overrides with the keys of every `--config` file first).
    Raises InvalidInput."""
    ours, theirs = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    files, ours = split_config_files(ours)
    more, theirs = split_config_files(theirs)
    try:
        args = parse_args(ours, SubmitArgs)
    except InvalidInput as e:
        if not e.failure.message.startswith(("unknown key", "unknown option")):
            raise
        raise InvalidInput(
            f"{e.failure.message}; the sweep's keys go after `--`: tau2-rollout submit address=... -- domains=[retail] ..."
        ) from None
    return args, [*config_overrides([*files, *more]), *theirs]


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


def _submit(client, entrypoint: str, runtime_env: dict, wait_s: float = 120.0) -> str:
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


def run(argv: list[str]) -> int:
    """The command (see module doc): its exit status; bad input raises InvalidInput."""
    args, overrides = parse_command(argv)
    entrypoint, runtime_env = build_job(overrides, working_dir=args.working_dir, pip=args.pip)  # before the cluster

    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(args.address or os.environ.get("RAY_ADDRESS") or DEFAULT_ADDRESS)
    job_id = _submit(client, entrypoint, runtime_env)
    print(f"submitted {job_id}: {entrypoint}", flush=True)
    if not args.wait:
        return 0

    async def tail() -> None:
        async for chunk in client.tail_job_logs(job_id):
            sys.stdout.write(chunk)
            sys.stdout.flush()

    try:
        asyncio.run(tail())
    except KeyboardInterrupt:
        client.stop_job(job_id)
        print(f"\nstopping {job_id}", file=sys.stderr)
        return 130
    status = client.get_job_status(job_id)
    deadline = time.monotonic() + 60
    while str(status.value if hasattr(status, "value") else status) not in TERMINAL and time.monotonic() < deadline:
        time.sleep(1)
        status = client.get_job_status(job_id)
    status = str(status.value if hasattr(status, "value") else status)
    print(f"job {job_id}: {status}", flush=True)
    if status == "SUCCEEDED":
        return 0
    info = client.get_job_info(job_id)
    message = getattr(info, "message", "") or ""
    code = re.search(r"exit code (\d+)", message)
    return int(code.group(1)) if code else 1
