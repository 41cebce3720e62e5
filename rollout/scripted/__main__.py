"""`python -m rollout.scripted [--port 8000] [--policy oracle] [--latency 0.2] [--config FILE]`: serve until Ctrl-C.

`--config FILE` (repeatable): config files whose `task_sets` the oracle plays too (docs/tasks.md)."""

import argparse
import time

from rollout.core.config import SCRIPTED_POLICIES
from rollout.core.process_env import apply_defaults
from rollout.scripted.server import Faults, ScriptedServer


def main(argv=None) -> None:
    apply_defaults()
    p = argparse.ArgumentParser(prog="python -m rollout.scripted", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--policy", choices=SCRIPTED_POLICIES, default="oracle")
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to every completion")
    p.add_argument("--config", action="append", default=[], help="a config file whose task_sets are recognised")
    args = p.parse_args(argv)
    if args.config:
        from rollout.core.config import load_config
        from rollout.env.task_sets import register_task_sets

        register_task_sets(load_config(files=args.config).task_sets)
    server = ScriptedServer(args.policy, host=args.host, port=args.port, faults=Faults(latency_s=args.latency), record=False)
    server.start()
    print(f"scripted {args.policy} server at {server.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
