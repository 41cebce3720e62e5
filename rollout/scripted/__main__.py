"""`python -m rollout.scripted [--port 8000] [--policy oracle] [--latency 0.2] [--token-latency-ms 5] [--model qwen3]
[--reasoning-parser qwen3] [--weight-version 0] [--reply-style text_with_calls] [--config FILE]`: serve until Ctrl-C.

`--config FILE` (repeatable): config files whose `task_sets` the oracle plays too (docs/tasks.md)."""

import argparse
import time

from rollout.core.config import SCRIPTED_POLICIES
from rollout.core.process_env import apply_defaults
from rollout.scripted.chat_tokens import REASONING_PARSERS
from rollout.scripted.models import MODELS
from rollout.scripted.styles import REPLY_STYLES


def main(argv=None) -> None:
    apply_defaults()
    p = argparse.ArgumentParser(prog="python -m rollout.scripted", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--policy", choices=SCRIPTED_POLICIES, default="oracle")
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to every completion")
    p.add_argument(
        "--token-latency-ms",
        type=float,
        default=0.0,
        help="milliseconds each token of a policy generation takes (a weight swap aborts generations in flight)",
    )
    p.add_argument("--weight-version", default="default", help="the weight version served until POST /update_weights")
    p.add_argument("--model", choices=MODELS, default="qwen25", help="the model directory whose tokenizer and template it serves")
    p.add_argument(
        "--reasoning-parser", choices=REASONING_PARSERS, default=None, help="vLLM's --reasoning-parser (default: none)"
    )
    p.add_argument("--reply-style", choices=REPLY_STYLES, default="plain", help="the shape of the agent's tool-call replies")
    p.add_argument("--config", action="append", default=[], help="a config file whose task_sets are recognised")
    args = p.parse_args(argv)
    if args.config:
        from rollout.core.config import load_config
        from rollout.env.task_sets import register_task_sets

        register_task_sets(load_config(files=args.config).task_sets)
    from rollout.scripted.server import Faults, ScriptedServer  # imports tau2: after the defaults and --help

    server = ScriptedServer(
        args.policy,
        host=args.host,
        port=args.port,
        faults=Faults(latency_s=args.latency),
        record=False,
        model=args.model,
        reasoning_parser=args.reasoning_parser,
        reply_style=args.reply_style,
        weight_version=args.weight_version,
        token_latency_s=args.token_latency_ms / 1000.0,
    )
    server.start()
    print(f"scripted {args.policy} server ({args.model}) at {server.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
