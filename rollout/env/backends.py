"""Environment backends: which `EnvSession` a slot gets (`env.backend`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from rollout.clients import Endpoints
from rollout.config import RolloutConfig
from rollout.env.protocol import EnvSession


def session_factory(cfg: RolloutConfig, endpoints: Endpoints) -> Callable[[], Awaitable[EnvSession]]:
    """A coroutine function creating a new session of the configured backend.

    local: tau2 in-process (uses the user simulator client of `endpoints`).
    aenv: an aenv MCP server running this project's env module (see rollout/env/aenv/session.py).
    """
    if cfg.env.backend == "aenv":
        from rollout.env.aenv.session import open_aenv_session

        return lambda: open_aenv_session(cfg)
    from rollout.env.local import LocalSession

    async def local() -> EnvSession:
        return LocalSession(user_client=endpoints.user_client, user_model=endpoints.user_model, user_cfg=cfg.user_llm,
                            secrets=cfg.secrets())

    return local
