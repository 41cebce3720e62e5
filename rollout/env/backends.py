"""Environment backends: which `EnvSession` a slot gets (`env.backend`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Optional

from rollout.core.clients import ChatClient
from rollout.core.config import RolloutConfig
from rollout.env.protocol import EnvSession


def session_factory(
    cfg: RolloutConfig, user_client: Optional[ChatClient], user_model: Optional[str], secrets: list[str]
) -> Callable[[], Awaitable[EnvSession]]:
    """A coroutine function creating a new session of the configured backend.

    local: tau2 in-process, its user simulator over `user_client` (None: solo episodes only).
    aenv: an aenv MCP server running this project's env module (see rollout/env/aenv/session.py),
    which runs its own user simulator; its sessions are bound to no event loop.
    """
    if cfg.env.backend == "aenv":
        from rollout.env.aenv.session import open_aenv_session

        return lambda: open_aenv_session(cfg, secrets)
    from rollout.env.local import LocalSession

    async def local() -> EnvSession:
        return LocalSession(user_client=user_client, user_model=user_model, user_cfg=cfg.user_llm, secrets=secrets)

    return local
