"""`tau2-rollout capture-check llm.base_url=URL [llm.model=M] [llm.capture=token_in llm.tokenizer=DIR [llm.engine=sglang]
[llm.reasoning_parser=qwen3]] [user_llm.*=...] [compare=true] [out=FILE] [--config FILE ...] [key=value ...]`

Checks an inference server before training on it: does it return the tokens of its completions,
and how often would an episode's policy calls stitch into one training sequence?

1. One request with the token options of `llm.capture` (default `token_ids`: vLLM's chat
   endpoint with `return_token_ids` + `logprobs`; `tokens_as_ids`: `return_tokens_as_token_ids`
   for vLLM older than 0.10.2; `token_in`: the engine's token route with a prompt rendered from
   `llm.tokenizer`). A server that ignores an option is named with the option it ignored (when
   `token_ids` is ignored, `tokens_as_ids` is tried and suggested); a server whose token data is
   wrong (misaligned ids and logprobs, ids out of range, logprobs above 0) is named as such and
   the check fails.
2. `episodes` episodes of each of `domains` (the first tasks of the base split; domains that
   need a user simulator are skipped when `user_llm` is not set) through a local rollout pool
   with capture on.
3. Per domain: episodes scored, policy calls captured, call boundaries clean / split, and
   trajectories that are one clean sequence; then a JSON report at `out` (default
   capture-check.json): the server probe, the rates, and `trajectories[]`, each with `domain`,
   `task_id`, `reward`, `turns[]` (`prompt_token_ids`, `completion_token_ids`,
   `completion_logprobs`, `finish_reason`) and `segments[]` (the stitched view).

With `compare=true` (token_in only) the same tasks run a second time with chat capture
(`token_ids`) against the same server's chat endpoint, and both split rates are printed and
reported (`compare` in the report).

Keys: `domains` (default: airline, retail, telecom), `episodes` (per domain, default 2), `out`, `compare`,
`ray.*` (the local pool), and every key of an episode's settings (rollout/defaults/
defaults.yaml: `llm.*`, `user_llm.*`, `sampling`, `episode.*`, `env.*`); `--config FILE`
merges a YAML file under them.

Exit status: 0 the server returns tokens and every episode ran; 1 it does not (or episodes
failed: see the report); 2 bad input (an `out` that cannot be written is refused before the
server is asked).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rollout.core.command import parse_args
from rollout.core.config import RolloutConfig, setting
from rollout.core.failures import EpisodeFailure, InvalidInput, shown
from rollout.core.fast_http import EndpointError
from rollout.env.domains import DOMAINS, check_domain
from rollout.pool.capture_check import capture_episodes, probe
from rollout.pool.config import RayConfig


@dataclass
class CaptureCheckConfig(RolloutConfig):
    domains: list[str] = field(default_factory=lambda: [d for d in DOMAINS if d != "mock"])
    episodes: int = setting(2, minimum=1, help="episodes per domain")
    out: str = "capture-check.json"
    compare: bool = False
    ray: RayConfig = field(default_factory=RayConfig)


def run(argv: list[str]) -> int:
    """The command (see module doc): its exit status; bad input raises InvalidInput."""
    cfg = parse_args(argv, CaptureCheckConfig, config_files=True)
    if not cfg.llm.base_url:
        raise InvalidInput("llm.base_url=... is required: the server to check")
    if cfg.compare and cfg.llm.capture != "token_in":
        raise InvalidInput("compare=true compares llm.capture=token_in with chat capture: set llm.capture=token_in")
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
        cfg.llm.model = server["model"]
        report.update(episodes(cfg))
        if cfg.compare:
            chat = dataclasses.replace(cfg, llm=dataclasses.replace(cfg.llm, capture="token_ids"))
            print("the same tasks with chat capture (token_ids):")
            report["compare"] = {"token_ids": episodes(chat)["domains"]}
            print(_split_line("token_in", report["domains"]) + "\n" + _split_line("token_ids", report["compare"]["token_ids"]))
    Path(cfg.out).write_text(json.dumps(report, indent=1))
    print(f"report: {cfg.out}")
    failed = any(d["ended"] != d["scored"] for d in report["domains"].values())
    return 0 if server["ok"] and not failed else 1


def _split_line(mode: str, domains: dict) -> str:
    calls = sum(d["capture"]["boundaries_clean"] + d["capture"]["boundaries_split"] for d in domains.values())
    split = sum(d["capture"]["boundaries_split"] for d in domains.values())
    rate = f"{1000 * split / calls:.0f} per 1,000" if calls else "-"
    return f"{mode}: {split} of {calls} call boundaries split ({rate})"


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
    lines = [f"capture {mode}: NOT SUPPORTED — {why}" for mode, why in server["tried"].items()]
    if server.get("wrong"):
        lines.append(f"capture {server['wrong']}: the server's token data is wrong; do not train on it")
    if server["ok"]:
        hint = f" (set llm.capture={server['mode']})" if server["mode"] != (cfg.llm.capture or "token_ids") else ""
        lines.append(
            f"capture {server['mode']}: ok — {server['prompt_tokens']} prompt and {server['completion_tokens']} "
            f"completion tokens with logprobs from {server['model']}{hint}"
        )
    return "\n".join(lines)


def episodes(cfg: CaptureCheckConfig) -> dict[str, Any]:
    """The episodes through a local pool (`capture_episodes`), their table printed; the per-domain
    rates and the trajectories."""
    ran = capture_episodes(cfg, cfg.domains, cfg.episodes, cfg.ray)
    if ran["skipped"]:
        print(f"skipped {', '.join(ran['skipped'])}: they need a user simulator (user_llm.base_url / user_llm.model)")
    print(
        f"{'domain':<10} {'episodes':>8} {'scored':>6} {'calls':>6} {'captured':>8} {'clean':>6} {'split':>6} "
        f"{'clean rate':>10} {'clean trajectories':>18}"
    )
    for domain, d in ran["domains"].items():
        c = d["capture"]
        rate = "-" if c["clean_rate"] is None else f"{100 * c['clean_rate']:.0f} %"
        print(
            f"{domain:<10} {d['ended']:>8} {d['scored']:>6} {c['calls']:>6} {c['captured']:>8} {c['boundaries_clean']:>6} "
            f"{c['boundaries_split']:>6} {rate:>10} {c['trajectories_clean']:>18}"
        )
    return {"domains": ran["domains"], "trajectories": ran["trajectories"]}
