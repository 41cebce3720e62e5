"""tau2-rollout's AEnvironment environment module (served by `python -m aenv.main`).

Registers, on aenv's MCP server, the functions of `rollout.env.aenv.state.Tau2EnvState` (this
project's reset/step protocol and the upstream tau2-env functions), the reward at
/task/reward, and — when TAU2_DOMAIN is set — one MCP tool per tau2 tool of that domain
with tau2's real parameter names and types. The logic lives in the installed `rollout`
package; this file only registers it.
"""

import argparse
import inspect
import os
import sys
import typing

from aenv import get_registry, register_function, register_reward

from rollout.core.process_env import apply_defaults

apply_defaults()  # this module is the entry of an environment server: offline and quiet before tau2 is imported

from rollout.env.aenv.state import Tau2EnvState  # noqa: E402

SERVER = Tau2EnvState(os.environ)


def _health_probes_own_address() -> None:
    """Make aenv's built-in GET /health probe this server, not `localhost:8081`.

    aenv 0.1.6's `default_health_handler` checks MCP at a hard-coded
    `http://localhost:8081/mcp`, so a server started with `--host 127.0.0.x` (x != 1) or
    another port reports `status: error` (or a neighbour's health), and the SDK's
    `Environment.initialize()` then polls for 300 s and fails. Under
    `python -m aenv.main <module> --host H --port P`, H and P are in sys.argv: point the
    handler's cached client at them (0.0.0.0 / :: are probed on 127.0.0.1 / ::1). Under any
    other launcher, or when the launcher already set the probe, nothing changes.
    """
    main_spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if getattr(main_spec, "name", None) != "aenv.main":
        return
    try:
        from aenv.core import mcp_health
        from fastmcp import Client
        from fastmcp.client.transports import StreamableHttpTransport
    except ImportError:  # another aenv layout: leave its health handler alone
        return
    if getattr(mcp_health, "_mcp_client", None) is not None:
        return
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8081)
    args, _ = parser.parse_known_args(sys.argv[1:])
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(args.host, args.host)
    if ":" in host:
        host = f"[{host}]"
    mcp_health._mcp_client = Client(
        StreamableHttpTransport(url=f"http://{host}:{args.port}/mcp", headers={"Content-Type": "application/json"})
    )


_health_probes_own_address()


@register_function
async def tau2_reset(user_llm: typing.Optional[dict] = None, **request) -> dict:
    """Start a fresh episode on this instance (no process restart). Body: the fields of
    `rollout.env.protocol.ResetRequest` (domain, task_id, solo, sample, seed, episode_id,
    max_steps, max_errors, tag_requests, invalid_tool_args, empty_reply_retries, ...) and
    `user_llm` (the user simulator's sampling settings)."""
    return await SERVER.reset(user_llm, **request)


@register_function
async def tau2_step(text: typing.Optional[str] = None, tool_calls: typing.Optional[list] = None) -> dict:
    """One agent generation: its text and raw tool calls [{"id", "name", "arguments"}]."""
    return await SERVER.step(text, tool_calls)


@register_function
async def tau2_end(reason: str) -> dict:
    """End the episode now with tau2 termination `reason` (e.g. max_steps: the agent's token budget)."""
    return await SERVER.end(reason)


@register_function
async def tau2_get_system_prompt():
    """The agent's system prompt (tau2's, with the ticket in solo mode)."""
    return await SERVER.system_prompt()


@register_function
async def tau2_get_available_tools():
    """The agent's tools as OpenAI function schemas."""
    return await SERVER.available_tools()


@register_function
async def tau2_get_task_info() -> dict:
    """Domain, task id, tool names, limits (no evaluation data)."""
    return await SERVER.task_info()


@register_function
async def tau2_get_status() -> dict:
    """Step, done, last observation, rewards (no secrets)."""
    return await SERVER.status()


@register_function
async def tau2_send_message(message: str) -> dict:
    """Send the agent's message to the user; returns the user's reply as the observation."""
    return await SERVER.send_message(message)


@register_function
async def tau2_done() -> dict:
    """The agent ends the episode."""
    return await SERVER.done()


@register_reward
async def tau2_reward(**_ignored) -> dict:
    """tau2's reward and breakdown for the finished episode."""
    return await SERVER.reward()


def _openai_strict(schema):
    """`schema` with its $refs inlined and no `additionalProperties: true`, as OpenAI's strict
    function schemas (and the Agents SDK's strict conversion in `list_openai_tools`) require."""
    defs = schema.get("$defs", {}) if isinstance(schema, dict) else {}

    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                return walk(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {k: walk(v) for k, v in node.items() if k != "$defs" and not (k == "additionalProperties" and v is True)}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


def _typed(annotation):
    """The annotation validating as tau2's tool does, with an OpenAI-compatible schema."""
    from pydantic import TypeAdapter, WithJsonSchema

    try:
        schema = _openai_strict(TypeAdapter(annotation).json_schema())
    except Exception:
        return annotation
    return typing.Annotated[annotation, WithJsonSchema(schema)]


def _mcp_tool(tool):
    """An async function with the tau2 tool's name, doc and typed signature, run as one step."""
    hints = typing.get_type_hints(tool._func)
    params = [
        p.replace(annotation=_typed(hints.get(p.name, p.annotation)), kind=inspect.Parameter.KEYWORD_ONLY)
        for p in inspect.signature(tool._func).parameters.values()
    ]

    async def call(**kwargs) -> dict:
        return await SERVER.call_tool(tool.name, kwargs)

    call.__name__ = call.__qualname__ = tool.name
    call.__doc__ = tool.openai_schema["function"].get("description", "")
    call.__signature__ = inspect.Signature(params, return_annotation=dict)
    call.__annotations__ = {**{p.name: p.annotation for p in params}, "return": dict}
    return call


def _register_domain_tools() -> None:
    if not SERVER.domain:
        return
    from rollout.env.domains import load_domain

    assets = load_domain(SERVER.domain)
    solo = SERVER.solo and assets.supports_solo
    env = assets.new_environment(solo)
    tools = env.get_tools() + (env.get_user_tools() if solo and env.user_tools is not None else [])
    registry = get_registry()
    for tool in tools:
        registry.register(_mcp_tool(tool), name=tool.name)
    if solo:

        async def done() -> dict:
            """Call this function when you are done with the task."""
            return await SERVER.done()

        registry.register(done, name="done")


_register_domain_tools()
