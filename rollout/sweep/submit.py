"""`tau2-rollout submit --address http://head:8265 [--no-wait] -- key=value ...`

Submits `python -m rollout sweep ray.address=auto key=value ...` as a Ray job (what
`ray job submit --working-dir . -- python -m rollout sweep ...` does), with the runtime
environment the sweep needs: this directory as the working dir, and the offline/quiet
environment variables. Streams the job's output and exits 0 when it succeeds.

API keys: Ray records a job's entrypoint and runtime_env (dashboard /api/jobs/, `ray job
list`, its logs), so a literal key (`llm.api_key=K`, `llm={api_key: K}`, ...) is refused
before the cluster is contacted (exit 2). Pass the NAME of an environment variable
instead, `llm.api_key_env=MY_KEY` (likewise `user_llm.` and `env.aenv.`), set on every
node before `ray start` (Ray's processes inherit the raylet's environment), or a file
present on every node, `llm.api_key_file=/path`. Without either, the standard variables
(OPENAI_API_KEY, TAU2_USER_LLM_API_KEY, AENV_API_KEY) are read the same way.

The cluster's nodes must have this project's dependencies installed (same image or
`pip install -e .`); `--pip` asks Ray to install them into the job's environment instead.
Give `output_dir` as an absolute path on storage the head node keeps: the working dir is
temporary.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
import time
from typing import Any, Optional

from rollout.config import parse_overrides
from rollout.failures import InvalidInput
from rollout.process_env import child_env

TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


def literal_keys(overrides: list[str]) -> list[str]:
    """The dotted names of API keys given as literals in `overrides` (`llm.api_key=K`, or
    nested as `llm={api_key: K}` / `env.aenv={api_key: K}`). Raises InvalidInput for an
    override that cannot be parsed."""
    from omegaconf import DictConfig, OmegaConf

    _, conf = parse_overrides(overrides)
    found: list[str] = []

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                name = f"{prefix}{key}"
                if key == "api_key" and value is not None and value != "":
                    found.append(name)
                walk(value, f"{name}.")

    walk(OmegaConf.to_container(conf) if isinstance(conf, DictConfig) else {}, "")
    return found


def build_job(overrides: list[str], *, working_dir: str = ".", pip: bool = False) -> tuple[str, dict]:
    """(entrypoint, runtime_env) for a sweep job. Raises InvalidInput for a literal API key:
    neither the entrypoint nor the runtime_env (both shown in Ray's job table) may hold one."""
    keys = literal_keys(overrides)
    if keys:
        names = ", ".join(keys)
        raise InvalidInput(
            f"{names}: a literal API key would be stored in Ray's job table; pass the name of an environment "
            f"variable set on every node instead, e.g. {keys[0]}_env=MY_KEY (or {keys[0]}_file=/path)")
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


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--" in argv:
        split = argv.index("--")
        ours, overrides = argv[:split], argv[split + 1:]
    else:
        ours, overrides = argv, []
    p = argparse.ArgumentParser(prog="tau2-rollout submit", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--address", default=os.environ.get("RAY_ADDRESS", "http://127.0.0.1:8265"),
                   help="the cluster's dashboard / jobs API (default $RAY_ADDRESS or http://127.0.0.1:8265)")
    p.add_argument("--working-dir", default=".")
    p.add_argument("--no-wait", action="store_true", help="submit and return the job id")
    p.add_argument("--pip", action="store_true", help="install the dependencies into the job's environment")
    args = p.parse_args(ours)

    try:  # before contacting the cluster
        entrypoint, runtime_env = build_job(overrides, working_dir=args.working_dir, pip=args.pip)
    except InvalidInput as e:
        print(f"error: {e.failure.message}", file=sys.stderr)
        return 2

    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(args.address)
    job_id = _submit(client, entrypoint, runtime_env)
    print(f"submitted {job_id}: {entrypoint}", flush=True)
    if args.no_wait:
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
    return 0 if status == "SUCCEEDED" else 1


if __name__ == "__main__":
    sys.exit(main())
