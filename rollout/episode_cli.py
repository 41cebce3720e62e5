"""`tau2-rollout episode`: run one episode and print its transcript and reward.

    tau2-rollout episode --domain airline --task_id 12 --scripted oracle
    tau2-rollout episode --domain telecom --list
    OPENAI_BASE_URL=... TAU2_USER_LLM_API_BASE=... tau2-rollout episode --domain retail --task_id 3

Endpoints come from the config (and its environment variables, see
rollout/defaults/defaults.yaml). Exit status: 0 scored, 1 infrastructure failure, 2 bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Optional

from rollout.areal import Tau2Agent
from rollout.config import overrides_to_dict
from rollout.failures import InvalidInput


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="tau2-rollout episode", description="Run one TAU2 episode and print its reward.")
    p.add_argument("--domain", required=True, help="airline | retail | telecom | mock")
    p.add_argument("--task_id", "--task-id", dest="task_id", help="task id (see --list)")
    p.add_argument("--list", action="store_true", help="list the task ids of --split and exit")
    p.add_argument("--split", default="base", help="split for --list (base, train, test, ...)")
    p.add_argument("--scripted", choices=["oracle", "noop"], help="offline: play the built-in scripted model")
    p.add_argument("--solo", action=argparse.BooleanOptionalAction, default=None, help="force solo / user mode")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")
    p.add_argument("overrides", nargs="*", help="config overrides key=value (see rollout/defaults/defaults.yaml)")
    args = p.parse_args(argv)
    try:
        return asyncio.run(_main(args))
    except InvalidInput as e:
        print(f"error: {e.failure.message}", file=sys.stderr)
        return 2


async def _main(args) -> int:
    from rollout.env.domains import check_domain, load_domain

    check_domain(args.domain)
    if args.list:
        for task_id in load_domain(args.domain).task_ids(args.split):
            print(task_id)
        return 0
    if args.task_id is None:
        raise InvalidInput("--task_id is required (or --list to see the ids)")
    overrides = list(args.overrides)
    server = None
    if args.scripted:
        from rollout.scripted import ScriptedServer

        server = ScriptedServer(args.scripted, record=False).start()
        overrides = [f"llm.base_url={server.url}", f"user_llm.base_url={server.url}", "user_llm.model=scripted-user",
                     "llm.model=scripted-agent", *overrides]
    try:
        agent = Tau2Agent(**overrides_to_dict(overrides))
        data = {"domain": args.domain, "task_id": args.task_id, "seed": args.seed, "solo": args.solo}
        result = await agent.run_episode(data)
    finally:
        if server is not None:
            server.stop()
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.transcript())
        print()
        mode = "solo" if result.solo else "with user simulator"
        if result.ok:
            print(f"reward: {result.reward}  termination: {result.termination}  ({args.domain}/{args.task_id}, {mode}, "
                  f"{result.steps} steps, {result.durations.get('total_s', 0):.2f}s)")
        else:
            print(f"FAILED {result.failure.failure_class.value}: {result.failure.message}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
