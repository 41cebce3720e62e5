"""`python -m rollout.scripted [--port 8000] [--policy oracle] [--latency 0.2]`: serve until Ctrl-C."""

import argparse
import time

from rollout.core.config import SCRIPTED_POLICIES
from rollout.core.process_env import apply_defaults


def main(argv=None) -> None:
    apply_defaults()
    p = argparse.ArgumentParser(prog="python -m rollout.scripted", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--policy", choices=SCRIPTED_POLICIES, default="oracle")
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to every completion")
    args = p.parse_args(argv)
    from rollout.scripted.server import Faults, ScriptedServer  # imports tau2: after the defaults and --help

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
