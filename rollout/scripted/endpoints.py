"""Configs pointed at the scripted model server: the model names it answers to, in one place."""

from __future__ import annotations

import dataclasses

from rollout.core.config.schema import SCRIPTED_AGENT_MODEL as AGENT_MODEL
from rollout.core.config.schema import SCRIPTED_USER_MODEL as USER_MODEL

__all__ = ["AGENT_MODEL", "USER_MODEL", "overrides", "pointed_at"]


def pointed_at(cfg, url: str, model: str = "qwen25"):
    """A copy of `cfg` (any config with `llm` and `user_llm` sections) whose agent and user
    simulator both talk to the scripted server at `url` (the agent keeps a model name it has);
    in token-in mode without a tokenizer of its own, the agent renders with the server's model
    directory `model`."""
    from rollout.scripted.models import model_dir

    tokenizer = cfg.llm.tokenizer or (str(model_dir(model)) if cfg.llm.capture == "token_in" else None)
    return dataclasses.replace(
        cfg,
        llm=dataclasses.replace(cfg.llm, base_url=url, model=cfg.llm.model or AGENT_MODEL, tokenizer=tokenizer),
        user_llm=dataclasses.replace(cfg.user_llm, base_url=url, model=USER_MODEL),
    )


def overrides(url: str) -> list[str]:
    """The same as `key=value` overrides (for a config built from them)."""
    return [f"llm.base_url={url}", f"llm.model={AGENT_MODEL}", f"user_llm.base_url={url}", f"user_llm.model={USER_MODEL}"]
