"""What tau2's agent is shown: its system prompt and tool schemas, built by tau2's own agent classes."""

from __future__ import annotations

import functools
from typing import Optional


@functools.lru_cache(maxsize=4096)
def agent_view(domain: str, solo: bool, task_id: Optional[str]) -> tuple[str, tuple[dict, ...]]:
    """tau2's system prompt and tool schemas for the agent of a domain (cached per process).

    They depend only on the domain and mode, plus the task's ticket in solo mode (pass
    task_id None in non-solo mode); the schemas never depend on the task and are built once
    per domain and mode. Callers must not mutate the schemas.
    """
    from rollout.env.domains import load_domain

    assets = load_domain(domain)
    agent = tau2_agent(assets.new_environment(solo), assets.task(task_id) if task_id is not None else None, solo)
    return agent.system_prompt, _tool_schemas(domain, solo)


@functools.cache
def _tool_schemas(domain: str, solo: bool) -> tuple[dict, ...]:
    """The agent's tool schemas, which depend on the domain and mode only (a schema is a pydantic
    JSON-schema generation, ~1 ms per tool): built from tau2's agent for any task of the mode."""
    from tau2.agent.llm_agent import LLMSoloAgent

    from rollout.env.domains import load_domain

    assets = load_domain(domain)
    task = next(t for t in assets.tasks.values() if LLMSoloAgent.check_valid_task(t) and t.ticket) if solo else None
    return tuple(t.openai_schema for t in tau2_agent(assets.new_environment(solo), task, solo).tools)


def tau2_agent(env, task, solo: bool):
    """tau2's own agent object for this episode (used for its system prompt and tools only)."""
    from tau2.agent.llm_agent import LLMAgent, LLMSoloAgent

    if solo:
        user_tools = env.get_user_tools() if env.user_tools is not None else []
        return LLMSoloAgent(tools=env.get_tools() + user_tools, domain_policy=env.get_policy(), task=task)
    return LLMAgent(tools=env.get_tools(), domain_policy=env.get_policy())
