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
import os
import sys
from dataclasses import dataclass
from typing import Optional

from rollout.core.command import EXIT_INTERRUPTED, CommandArgs, parse_args, split_config_files
from rollout.core.failures import InvalidInput
from rollout.sweep.submit import build_job, config_overrides, job_outcome, submit_job

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


def run(argv: list[str]) -> int:
    """The command (see module doc): its exit status; bad input raises InvalidInput."""
    args, overrides = parse_command(argv)
    entrypoint, runtime_env = build_job(overrides, working_dir=args.working_dir, pip=args.pip)  # before the cluster

    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(args.address or os.environ.get("RAY_ADDRESS") or DEFAULT_ADDRESS)
    job_id = submit_job(client, entrypoint, runtime_env)
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
        return EXIT_INTERRUPTED
    status, exit_status = job_outcome(client, job_id)
    print(f"job {job_id}: {status}", flush=True)
    return exit_status
