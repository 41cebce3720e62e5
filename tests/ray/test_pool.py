"""The rollout pool from a Python session, as a trainer calls it: token-exact trajectories, groups, cancels.

The model is the scripted server in vLLM's token mode (a real BPE tokenizer and Qwen2.5's chat
template); Ray, the Agents SDK, tau2 and the HTTP path are real. Rewards are checked against
tau2's own evaluator on its own environments (tests/tau2_direct.py does not use this package).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os

import pytest

from rollout.core.failures import FailureClass, InvalidInput
from rollout.env.domains import load_domain
from rollout.pool import Endpoint, RolloutPool, RolloutRequest
from rollout.scripted import Faults, ScriptedServer, chat_tokens
from rollout.scripted.endpoints import AGENT_MODEL, USER_MODEL
from tests import tau2_direct

TASKS = [(d, t) for d, n in (("airline", 3), ("retail", 3), ("telecom", 2)) for t in load_domain(d).task_ids()[:n]]


def pool_config(server, *extra: str) -> list[str]:
    return [
        f"llm.base_url={server.url}",
        f"llm.model={AGENT_MODEL}",
        f"user_llm.base_url={server.url}",
        f"user_llm.model={USER_MODEL}",
        "llm.max_retries=0",
        *extra,
    ]


def tau2_reward(t) -> float:
    """tau2's own evaluator on tau2's own environment, from the trajectory's messages."""
    from tau2.data_model.message import AssistantMessage, ToolMessage, UserMessage
    from tau2.data_model.simulation import TerminationReason

    task = next(x for x in tau2_direct.tasks(t.domain) if x.id == t.task_id)
    kinds = {"user": UserMessage, "assistant": AssistantMessage, "tool": ToolMessage}
    messages = [kinds[m["role"]].model_validate(m) for m in t.result.messages]
    return tau2_direct.evaluate(t.domain, task, messages, TerminationReason(t.termination), solo=t.result.solo).reward


def test_64_requests_with_token_capture(ray_cluster):
    """8 groups x 8 samples over airline, retail and telecom: groups stream complete, every
    captured completion decodes to what the agent was given, the stitched views cover exactly
    the policy's tokens, and the rewards are tau2's."""
    with ScriptedServer("oracle", reply_style="mixed") as server:
        requests = [RolloutRequest(d, t, sample=k, weight_version=11) for d, t in TASKS for k in range(8)]
        with RolloutPool(pool_config(server, "llm.capture=token_ids"), ray={"num_workers": 2, "slots_per_worker": 16}) as pool:
            groups = list(pool.stream_groups(requests))
            stats = pool.stats()
        agent_requests = [r for r in server.requests if r["role"] == "agent"]
    assert sorted(g[0].group_id for g in groups) == sorted(f"{d}/{t}" for d, t in TASKS)
    assert all(
        len(g) == 8 and {t.group_id for t in g} == {g[0].group_id} and sorted(t.sample for t in g) == list(range(8))
        for g in groups
    )
    trajectories = [t for g in groups for t in g]
    assert all(t.reward == 1.0 and t.train_action == "train" for t in trajectories), [t.failure for t in trajectories]
    calls = 0
    for t in trajectories:
        assert t.turns and not t.result.capture_errors and t.weight_version == 11
        for turn in t.turns:
            assert turn.weight_version == 11 and len(turn.completion_logprobs) == len(turn.completion_token_ids)
            shown = t.result.messages[turn.message_index]  # the tau2 message this call became
            parsed = chat_tokens.parse_completion(chat_tokens.decode(turn.completion_token_ids))
            assert (parsed["content"] or None) == (shown.get("content") or None)
            assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in parsed["tool_calls"] or []] == [
                (c["name"], c["arguments"]) for c in shown.get("tool_calls") or []
            ]
            calls += 1
        # the stitched view: exactly the policy's tokens under the mask, with their logprobs
        masked = [i for s in t.segments for i, m in zip(s.response_ids, s.response_mask) if m]
        assert masked == [i for turn in t.turns for i in turn.completion_token_ids]
        assert len(t.segments) == 1 + t.drift.split and t.drift.boundaries == len(t.turns) - 1
        for s in t.segments:  # what was stitched re-tokenizes to the same ids
            full = s.prompt_ids + s.response_ids
            assert chat_tokens.encode(chat_tokens.decode(full, skip_special_tokens=False)) == full
    assert calls == len(agent_requests)  # one record per policy call
    # every recorded id and logprob is what the server sent for that call
    sent = sorted(
        (tuple(r["sent_tokens"]["prompt_token_ids"]), tuple(r["sent_tokens"]["token_ids"]), tuple(r["sent_tokens"]["logprobs"]))
        for r in agent_requests
    )
    recorded = sorted(
        (tuple(turn.prompt_token_ids), tuple(turn.completion_token_ids), tuple(turn.completion_logprobs))
        for t in trajectories
        for turn in t.turns
    )
    assert recorded == sent
    rescored = {t.group_id: tau2_reward(t) for t in trajectories[::8]}
    assert rescored == {t.group_id: t.reward for t in trajectories[::8]}
    # text beside tool calls re-renders with one more newline than the model wrote (vLLM + Qwen2.5): split, counted
    capture = stats["capture"]
    assert capture["boundaries_split"] > 0 and capture["boundaries_clean"] > 0
    assert capture["boundaries_clean"] + capture["boundaries_split"] == sum(t.drift.boundaries for t in trajectories)


def test_capture_off_leaves_the_requests_as_they_were(ray_cluster):
    with ScriptedServer("oracle") as server:
        with RolloutPool(pool_config(server), ray={"num_workers": 1}) as pool:
            [t] = pool.run([RolloutRequest("airline", "12")])
    assert t.reward == 1.0 and t.turns == [] and t.segments == []
    bodies = [r["body"] for r in server.requests]
    assert not any(k in b for b in bodies for k in ("logprobs", "top_logprobs", "return_token_ids"))


def test_per_request_endpoints_keys_by_name_and_run_order(ray_cluster):
    """Each request's policy endpoint and key (read by the worker from the variable it names)."""
    with ScriptedServer("oracle") as a, ScriptedServer("oracle") as b:
        requests = [
            RolloutRequest(
                "mock",
                "create_task_1",
                sample=i,
                solo=True,
                policy=Endpoint(
                    (a if i % 2 else b).url,
                    api_key_env="ROLLOUT_TEST_KEY",
                    model=AGENT_MODEL,
                    headers={"X-Routing-Key": f"r{i}"},
                    extra_body={"temperature": 0.5},
                ),
            )
            for i in range(4)
        ]
        missing = RolloutRequest(
            "mock", "create_task_1", sample=9, solo=True, policy=Endpoint(a.url, api_key_env="ROLLOUT_NO_SUCH_VARIABLE")
        )
        with RolloutPool(pool_config(a), ray={"num_workers": 1}) as pool:
            with pytest.raises(InvalidInput, match=r"^invalid_input: Endpoint.api_key_env names ROLLOUT_NO_SUCH_VARIABLE"):
                pool.run([*requests, missing])  # refused once, before any of the call's episodes runs
            assert pool.stats()["submitted"] == 0 and not a.requests and not b.requests
            out = pool.run(requests)
    assert [t.sample for t in out] == [0, 1, 2, 3]
    assert [t.reward for t in out] == [1.0] * 4
    key = hashlib.sha256(os.environ["ROLLOUT_TEST_KEY"].encode()).hexdigest()
    for server, samples in ((a, {"1", "3"}), (b, {"0", "2"})):
        agent = [r for r in server.requests if r["role"] == "agent"]
        assert {r["headers"]["x-rollout-sample"] for r in agent} == samples
        assert all(r["key_sha256"] == key and r["body"]["temperature"] == 0.5 for r in agent)
        assert {r["headers"]["x-routing-key"] for r in agent} == {f"r{s}" for s in samples}


def test_extra_samples_against_stragglers_and_cancel(ray_cluster):
    """extra_samples=2: each group is its first 4 scored samples; the stragglers are cancelled."""
    with ScriptedServer("oracle", faults=Faults(latency_s=0.05)) as server:
        requests = [
            RolloutRequest("mock", t, sample=k) for t in ("create_task_1", "update_task_with_message_history") for k in range(4)
        ]
        with RolloutPool(pool_config(server), ray={"num_workers": 1, "slots_per_worker": 12}) as pool:
            groups = list(pool.stream_groups(requests[:4], extra_samples=2))
            assert len(groups) == 1 and len(groups[0]) == 4 and all(t.ok for t in groups[0])
            stats = pool.stats()
            assert stats["ended"] == 6 and stats["in_flight"] == 0  # the two extras ended: finished or cancelled

            async def first_group():
                async for group in pool.astream_groups(requests[4:]):
                    return group

            group = asyncio.run(first_group())
            assert len(group) == 4 and {t.group_id for t in group} == {"mock/update_task_with_message_history"}


def test_cancel_a_group_while_it_runs(ray_cluster):
    with ScriptedServer("oracle", faults=Faults(latency_s=0.3)) as server:
        requests = [RolloutRequest("airline", "12", sample=k) for k in range(6)] + [
            RolloutRequest("mock", "create_task_1", solo=True)
        ]
        with RolloutPool(pool_config(server), ray={"num_workers": 1, "slots_per_worker": 2}) as pool:
            seen = []
            for t in pool.stream(requests):
                seen.append(t)
                if len(seen) == 1:
                    pool.cancel("airline/12")
    cancelled = [t for t in seen if t.failure and t.failure.failure_class is FailureClass.CANCELLED]
    assert len(seen) == 7 and cancelled and all(t.train_action == "drop" for t in cancelled)
    assert any(t.domain == "mock" and t.ok for t in seen)
