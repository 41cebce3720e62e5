"""AEnvironment's tau2_rl example call sequence, for testing our env module against it.

Reproduces the sequence of aenv/examples/tau2_rl/agent.py: Environment(...) + initialize(),
tau2_get_system_prompt, list_openai_tools (MCP tools as Agents SDK tools), tau2_get_status,
then turns of Runner.run with the MCP tools + tau2_send_message until done, and the reward
from /task/reward ("total_reward"). Endpoints come from the environment (OPENAI_BASE_URL,
DUMMY_INSTANCE_IP), as in the example. Prints {"reward": ..., "status": ...} as JSON.
"""

import asyncio
import json
import sys

from aenv.core.environment import Environment
from agents import Agent, ModelSettings, RunConfig, Runner, set_default_openai_api


async def main(env_name: str) -> dict:
    set_default_openai_api("chat_completions")
    env = Environment(env_name=env_name)
    try:
        await env.initialize()
        system_prompt = await env.call_function("tau2_get_system_prompt", {})
        tools = await env.list_openai_tools()
        agent = Agent(name="Tau2 Agent", instructions=str(system_prompt), tools=tools)
        status = await env.call_function("tau2_get_status", {})
        for _ in range(status.get("max_steps", 50)):
            status = await env.call_function("tau2_get_status", {})
            if status.get("done"):
                break
            observation = status.get("last_observation") or "Please start working on the task."
            try:
                result = await Runner.run(agent, input=observation, max_turns=10,
                                          run_config=RunConfig(tracing_disabled=True,
                                                               model_settings=ModelSettings(temperature=1.0, top_p=1.0)))
                status = await env.call_function("tau2_send_message", {"message": result.final_output})
                if status.get("done"):
                    break
            except Exception as e:  # the example keeps going after a failed turn
                print(f"turn error: {type(e).__name__}: {e}", file=sys.stderr)
        reward = await env.call_reward({})
        return {"reward": float(reward.get("total_reward", 0.0)), "status": await env.call_function("tau2_get_status", {}),
                "tools": [t.name for t in tools]}
    finally:
        await env.release()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1]))))
