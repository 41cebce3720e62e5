"""Whether an inference server returns the tokens training needs, and how often an episode's
policy calls stitch into one sequence (the `capture-check` command prints what these return).

`probe(cfg)` sends one request with the token options of `llm.capture` (the chat modes are
tried in turn while the server ignores an option; a chat answer whose token data is wrong stops
there); `capture_episodes(cfg, domains, per_domain, ray)` runs the first tasks of each domain
through a local rollout pool with capture on and returns the pool's per-domain capture rates
and each trajectory in both views.
"""

from __future__ import annotations

from typing import Any

from rollout.core.clients import make_client, resolve_model, user_sim_configured
from rollout.core.config import RolloutConfig
from rollout.core.tokenin.chat_format import load_chat_format
from rollout.core.tokenin.engines import read_answer, request_body, route
from rollout.core.tokens import CHAT_CAPTURE_MODES, CaptureError, OptionIgnored, capture_fields, turn_record
from rollout.env.domains import load_domain
from rollout.pool.config import RayConfig
from rollout.pool.pool import RolloutPool
from rollout.pool.requests import RolloutRequest

PROBE_MESSAGES = [
    {"role": "system", "content": "You are a customer service agent."},
    {"role": "user", "content": "Hi, can you check order 42 for me?"},
]


async def probe(cfg: RolloutConfig) -> dict[str, Any]:
    """One request per capture mode until one works: {"mode", "ok", "ignored", "model"}; a chat
    mode whose answer is wrong (not merely missing a field) stops there."""
    if cfg.llm.capture == "token_in":
        return await _probe_token_in(cfg)
    client = make_client(cfg.llm, role="llm")
    try:
        model = await resolve_model(client, cfg.llm.model, role="llm", secrets=cfg.secrets())
        first = cfg.llm.capture or "token_ids"
        tried, wrong = {}, None
        for mode in [first] + [m for m in CHAT_CAPTURE_MODES if m != first]:
            body = {"model": model, "messages": PROBE_MESSAGES, "max_tokens": 32, **capture_fields(mode)}
            try:
                turn = turn_record(await client.complete(body), mode)
                return _probe_ok(mode, model, tried, len(turn.prompt_token_ids or []), len(turn.completion_token_ids))
            except OptionIgnored as e:
                tried[mode] = str(e)
            except CaptureError as e:
                wrong = f"{mode}: {e}"
                break
        return {"mode": None, "ok": False, "model": model, "tried": tried, "wrong": wrong}
    finally:
        await client.close()


async def _probe_token_in(cfg: RolloutConfig) -> dict[str, Any]:
    """One token-route request with a prompt rendered from llm.tokenizer."""
    fmt = load_chat_format(cfg.llm.tokenizer, cfg.llm.chat_template_kwargs)
    base, path = route(cfg.llm.engine, cfg.llm.base_url)
    client = make_client(cfg.llm, base_url=base, role="llm")
    try:
        model = cfg.llm.model or await resolve_model(client, None, role="llm", secrets=cfg.secrets())
        prompt = fmt.first_prompt(PROBE_MESSAGES, None)
        try:
            data = await client.post(path, request_body(cfg.llm.engine, model, prompt, {"max_tokens": 32}))
            answer = read_answer(cfg.llm.engine, data, prompt, vocab_size=fmt.vocab_size)
        except OptionIgnored as e:
            return {"mode": None, "ok": False, "model": model, "tried": {"token_in": str(e)}, "wrong": None}
        except CaptureError as e:
            return {"mode": None, "ok": False, "model": model, "tried": {}, "wrong": f"token_in: {e}"}
        return _probe_ok("token_in", model, {}, len(prompt), len(answer.completion_ids))
    finally:
        await client.close()


def _probe_ok(mode: str, model: str, tried: dict, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "mode": mode,
        "ok": True,
        "model": model,
        "tried": tried,
        "wrong": None,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
    }


def capture_episodes(cfg: RolloutConfig, domains: list[str], per_domain: int, ray: RayConfig) -> dict[str, Any]:
    """Run the first `per_domain` tasks of each domain through a local pool with `cfg`'s capture:
    {"domains": the pool's per-domain stats, "trajectories": one entry each (`_entry`),
    "skipped": the domains left out because they need a user simulator `cfg` does not set}."""
    with_user = user_sim_configured(cfg.user_llm)
    requests, skipped = [], []
    for domain in domains:
        assets = load_domain(domain)
        if not with_user and not assets.supports_solo:
            skipped.append(domain)
            continue
        requests += [RolloutRequest(domain, t) for t in assets.task_ids()[:per_domain]]
    with RolloutPool(cfg, ray=ray) as pool:
        trajectories = pool.run(requests)
        stats = pool.stats()
    return {"domains": stats["domains"], "trajectories": [_entry(t) for t in trajectories], "skipped": skipped}


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
