"""`tau2-rollout capture-check llm.base_url=URL [llm.model=M] [user_llm.*=...] [out=FILE] [--config FILE ...] [key=value ...]`

Checks an inference server before training on it: does it return the tokens of its completions,
and how often would an episode's policy calls stitch into one training sequence?

1. One chat request with the token options of `llm.capture` (default `token_ids`: vLLM's
   `return_token_ids` + `logprobs`; `tokens_as_ids`: `return_tokens_as_token_ids` for vLLM
   older than 0.10.2). A server that ignores an option is named with the option it ignored;
   when `token_ids` is ignored, `tokens_as_ids` is tried and suggested.
2. `episodes` episodes of each of `domains` (the first tasks of the base split; domains that
   need a user simulator are skipped when `user_llm` is not set) through a local rollout pool
   with capture on.
3. Per domain: episodes scored, policy calls captured, call boundaries clean / split, and
   trajectories that are one clean sequence; then a JSON report at `out` (default
   capture-check.json): the server probe, the rates, and `trajectories[]`, each with `domain`,
   `task_id`, `reward`, `turns[]` (`prompt_token_ids`, `completion_token_ids`,
   `completion_logprobs`, `finish_reason`) and `segments[]` (the stitched view).

Keys: `domains` (default: airline, retail, telecom), `episodes` (per domain, default 2), `out`,
`ray.*` (the local pool), and every key of an episode's settings (rollout/defaults/
defaults.yaml: `llm.*`, `user_llm.*`, `sampling`, `episode.*`, `env.*`); `--config FILE`
merges a YAML file under them.

Exit status: 0 the server returns tokens and every episode ran; 1 it does not (or episodes
failed: see the report); 2 bad input (an `out` that cannot be written is refused before the
server is asked).
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rollout.core.clients import make_client, resolve_model, user_sim_configured
from rollout.core.command import parse_args
from rollout.core.config import RolloutConfig
from rollout.core.failures import EpisodeFailure, InvalidInput, shown
from rollout.core.fast_http import EndpointError
from rollout.core.tokens import CAPTURE_MODES, CaptureError, capture_fields, turn_record
from rollout.env.domains import DOMAINS, check_domain, load_domain
from rollout.pool.config import RayConfig

PROBE_MESSAGES = [
    {"role": "system", "content": "You are a customer service agent."},
    {"role": "user", "content": "Hi, can you check order 42 for me?"},
]


@dataclass
class CaptureCheckConfig(RolloutConfig):
    domains: list[str] = field(default_factory=lambda: [d for d in DOMAINS if d != "mock"])
    episodes: int = 2
    out: str = "capture-check.json"
    ray: RayConfig = field(default_factory=RayConfig)


async def probe(cfg: RolloutConfig) -> dict[str, Any]:
    """One request per capture mode until one works: {"mode", "ok", "ignored", "model"}."""
    client = make_client(cfg.llm, role="llm")
    try:
        model = await resolve_model(client, cfg.llm.model, role="llm", secrets=cfg.secrets())
        modes = [cfg.llm.capture or "token_ids"] + [m for m in CAPTURE_MODES if m != (cfg.llm.capture or "token_ids")]
        tried = {}
        for mode in modes:
            body = {"model": model, "messages": PROBE_MESSAGES, "max_tokens": 32, **capture_fields(mode)}
            try:
                data = await client.complete(body)
                turn = turn_record(data, mode)
                return {
                    "mode": mode,
                    "ok": True,
                    "model": model,
                    "tried": tried,
                    "prompt_tokens": len(turn.prompt_token_ids or []),
                    "completion_tokens": len(turn.completion_token_ids),
                }
            except CaptureError as e:
                tried[mode] = str(e)
        return {"mode": None, "ok": False, "model": model, "tried": tried}
    finally:
        await client.close()


def run(argv: list[str]) -> int:
    """The command (see module doc): its exit status; bad input raises InvalidInput."""
    cfg = parse_args(argv, CaptureCheckConfig, config_files=True)
    if not cfg.llm.base_url:
        raise InvalidInput("llm.base_url=... is required: the server to check")
    if cfg.episodes < 1:
        raise InvalidInput(f"episodes={cfg.episodes}: valid: an integer >= 1")
    if not cfg.domains:
        raise InvalidInput(f"domains is empty; valid domains: {', '.join(d for d in DOMAINS if d != 'mock')}, mock")
    for domain in cfg.domains:
        check_domain(domain)
    check_out(cfg.out)
    try:
        server = asyncio.run(probe(cfg))
    except (EpisodeFailure, EndpointError) as e:
        print(f"error: the server cannot be asked: {e}", file=sys.stderr)
        return 1
    print(_probe_line(cfg, server))
    report: dict[str, Any] = {"server": server, "domains": {}, "trajectories": []}
    if server["ok"]:
        cfg.llm.capture = server["mode"]
        report.update(episodes(cfg, server["model"]))
    Path(cfg.out).write_text(json.dumps(report, indent=1))
    print(f"report: {cfg.out}")
    failed = any(d["ended"] != d["scored"] for d in report["domains"].values())
    return 0 if server["ok"] and not failed else 1


def check_out(out: str) -> None:
    """Refuse a report path that cannot be written (a directory, a missing or read-only parent)
    before anything runs. Raises InvalidInput; leaves no file behind."""
    path = Path(out)
    if path.is_dir():
        raise InvalidInput(f"out={shown(out)} is a directory: valid: the path of a file for the JSON report")
    try:
        existed = path.exists()
        with open(path, "a", encoding="utf-8"):
            pass
        if not existed:
            path.unlink()
    except OSError as e:
        raise InvalidInput(
            f"out={shown(out)} cannot be written: {e.strerror or type(e).__name__}: valid: a file path this process can write"
        ) from None


def _probe_line(cfg: CaptureCheckConfig, server: dict) -> str:
    lines = []
    for mode, why in server["tried"].items():
        option = "return_token_ids" if mode == "token_ids" else "return_tokens_as_token_ids"
        lines.append(f"capture {mode}: NOT SUPPORTED — the server ignored `{option}` ({why})")
    if server["ok"]:
        hint = f" (set llm.capture={server['mode']})" if server["mode"] != (cfg.llm.capture or "token_ids") else ""
        lines.append(
            f"capture {server['mode']}: ok — {server['prompt_tokens']} prompt and {server['completion_tokens']} "
            f"completion tokens with logprobs from {server['model']}{hint}"
        )
    return "\n".join(lines)


def episodes(cfg: CaptureCheckConfig, model: str) -> dict[str, Any]:
    """Run the episodes through a local pool; the per-domain rates and the trajectories."""
    from rollout.pool import RolloutPool, RolloutRequest

    cfg.llm.model = model
    with_user = user_sim_configured(cfg.user_llm)
    requests, skipped = [], []
    for domain in cfg.domains:
        assets = load_domain(domain)
        if not with_user and not assets.supports_solo:
            skipped.append(domain)
            continue
        requests += [RolloutRequest(domain, t) for t in assets.task_ids()[: cfg.episodes]]
    if skipped:
        print(f"skipped {', '.join(skipped)}: they need a user simulator (user_llm.base_url / user_llm.model)")
    trajectories = []
    with RolloutPool(cfg, ray=cfg.ray) as pool:
        trajectories = pool.run(requests)
        stats = pool.stats()
    print(
        f"{'domain':<10} {'episodes':>8} {'scored':>6} {'calls':>6} {'captured':>8} {'clean':>6} {'split':>6} "
        f"{'clean rate':>10} {'clean trajectories':>18}"
    )
    for domain, d in stats["domains"].items():
        c = d["capture"]
        rate = "-" if c["clean_rate"] is None else f"{100 * c['clean_rate']:.0f} %"
        print(
            f"{domain:<10} {d['ended']:>8} {d['scored']:>6} {c['calls']:>6} {c['captured']:>8} {c['boundaries_clean']:>6} "
            f"{c['boundaries_split']:>6} {rate:>10} {c['trajectories_clean']:>18}"
        )
    return {"domains": stats["domains"], "trajectories": [_entry(t) for t in trajectories]}


def _entry(t) -> dict[str, Any]:
    return {
        "domain": t.domain,
        "task_id": t.task_id,
        "reward": t.reward,
        "failure": t.failure and t.failure.to_dict(),
        "turns": [x.to_dict() if x else None for x in t.turns],
        "capture_errors": t.result.capture_errors,
        "segments": [s.to_dict() for s in t.segments],
        "drift": t.drift.to_dict(),
    }
