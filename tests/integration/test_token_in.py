"""Token-in against the scripted server speaking vLLM's /v1/completions and SGLang's /generate with
real chat templates (Qwen2.5's, Qwen3's with thinking on and off), on reply shapes that break
re-rendering: every episode is one exact token sequence, the tokens are what the server sent,
tau2 gets the same messages as through the chat endpoint and its evaluator gives the same reward;
the chat path on the same tasks still reports its splits.

Only the model is scripted: tau2, the Agents SDK, HTTP and the episode core run for real."""

from __future__ import annotations

from collections import defaultdict

import pytest
from tau2.data_model.message import AssistantMessage, ToolMessage, UserMessage
from tau2.data_model.simulation import TerminationReason

from rollout.agent.episode import EpisodeSpec
from rollout.env.domains import load_domain
from rollout.scripted import ScriptedServer
from rollout.scripted.models import model_dir
from rollout.trajectory import Trajectory
from tests import tau2_direct
from tests.helpers import run_specs, scripted_config

pytestmark = pytest.mark.integration

TASKS = {"airline": 2, "retail": 1, "telecom": 1}
# (name, model, server reasoning parser, chat_template_kwargs, reply style, drift, engine)
CASES = [
    ("qwen25-tool-calls-alone", "qwen25", None, {}, "plain", None, "vllm"),  # append-only: token-in = the engine's render
    ("qwen3-thinking-parser", "qwen3", "qwen3", {}, "text_with_calls", None, "vllm"),
    ("qwen3-no-thinking", "qwen3", "qwen3", {"enable_thinking": False}, "text_with_calls", None, "vllm"),
    ("qwen3-thinking-no-parser", "qwen3", None, {}, "plain", None, "vllm"),
    ("qwen25-sentence-before-calls", "qwen25", None, {}, "text_with_calls", None, "vllm"),
    ("qwen25-compact-json", "qwen25", None, {}, "plain", "compact_json", "vllm"),
    ("qwen25-noncanonical", "qwen25", None, {}, "plain", "noncanonical", "vllm"),
    ("qwen3-thinking-sglang", "qwen3", "qwen3", {}, "text_with_calls", None, "sglang"),
]


def specs() -> list[EpisodeSpec]:
    out = []
    for domain, n in TASKS.items():
        out += [EpisodeSpec(domain, t, sample=0, seed=11) for t in load_domain(domain).task_ids()[:n]]
    return out


def run(server, model, parser, kwargs, capture, engine="vllm"):
    extra = [f"llm.capture={capture}", f"llm.chat_template_kwargs={_yaml(kwargs)}", "sampling.temperature=0.0"]
    if capture == "token_in":
        extra += [f"llm.tokenizer={model_dir(model)}", f"llm.engine={engine}"]
        extra += [f"llm.reasoning_parser={parser}"] if parser else []
    cfg = scripted_config(server, extra=extra)
    return [Trajectory.of(r, group_id=f"{r.domain}/{r.task_id}") for r in run_specs(cfg, specs(), concurrency=4)]


def _yaml(kwargs: dict) -> str:
    return "{" + ",".join(f"{k}:{str(v).lower()}" for k, v in kwargs.items()) + "}"


def sent_by_episode(server) -> dict[str, list[dict]]:
    """What the server sent each episode's policy calls, in order."""
    out = defaultdict(list)
    for r in server.requests:
        if r["role"] == "agent" and r.get("sent_tokens"):
            out[r["headers"].get("x-rollout-episode", "")].append(r["sent_tokens"])
    return out


def _task(request: dict) -> tuple:
    return request["headers"].get("x-rollout-domain"), request["headers"].get("x-rollout-task-id")


def tau2_messages(trajectory: Trajectory) -> list:
    classes = {"assistant": AssistantMessage, "user": UserMessage, "tool": ToolMessage}
    return [classes[m["role"]].model_validate(m) for m in trajectory.result.messages]


def shown(trajectory: Trajectory) -> list[tuple]:
    """What tau2 recorded, without call ids and timestamps."""
    return [
        (m["role"], m.get("content"), [(c["name"], c["arguments"]) for c in m.get("tool_calls") or []])
        for m in trajectory.result.messages
    ]


@pytest.mark.parametrize("name, model, parser, kwargs, style, drift, engine", CASES, ids=[c[0] for c in CASES])
def test_token_in_is_one_exact_sequence_with_tau2s_reward(name, model, parser, kwargs, style, drift, engine):
    with ScriptedServer("oracle", model=model, reasoning_parser=parser, reply_style=style) as server:
        server.set_tokens(drift=drift)
        token_in = run(server, model, parser, kwargs, "token_in", engine)
        sent = sent_by_episode(server)
        by_episode = {_task(r): r["headers"].get("x-rollout-episode") for r in server.requests}
        server.requests.clear()
        chat = run(server, model, parser, kwargs, "token_ids") if engine == "vllm" else []
        chat_sent = sent_by_episode(server)
        chat_episode = {_task(r): r["headers"].get("x-rollout-episode") for r in server.requests}

    for t in token_in:
        assert t.ok and t.reward == 1.0, (t.task_id, t.failure, t.termination)
        task = load_domain(t.domain).task(t.task_id)
        reference = tau2_direct.evaluate(t.domain, task, tau2_messages(t), TerminationReason(t.termination), solo=False)
        assert reference.reward == t.reward
        assert t.clean and len(t.segments) == 1 and t.drift.split == 0, (t.task_id, t.drift)
        calls = sent[by_episode[(t.domain, t.task_id)]]
        assert len(calls) == len(t.turns) >= 1
        for turn, server_sent in zip(t.turns, calls):
            assert turn.prompt_token_ids == server_sent["prompt_token_ids"]
            assert turn.completion_token_ids == server_sent["token_ids"]
            assert turn.completion_logprobs == server_sent["logprobs"]

    if chat:
        by_task = {(t.domain, t.task_id): t for t in chat}
        for t in token_in:
            assert shown(t) == shown(by_task[(t.domain, t.task_id)]), f"{t.task_id}: tau2 recorded different messages"
            assert by_task[(t.domain, t.task_id)].reward == t.reward
        chat_prompts = sorted(calls[0]["prompt_token_ids"] for calls in chat_sent.values())
        assert chat_prompts == sorted(t.turns[0].prompt_token_ids for t in token_in)  # the engine's own render
        splits = sum(t.drift.split for t in chat)
        if name == "qwen25-tool-calls-alone":  # the template re-renders history as written: every prompt the same
            assert splits == 0
            for t in token_in:
                chat_calls = chat_sent[chat_episode[(t.domain, t.task_id)]]
                assert [turn.prompt_token_ids for turn in t.turns] == [c["prompt_token_ids"] for c in chat_calls]
        else:
            assert splits > 0, "the chat path on these shapes should split (else this case tests nothing)"


@pytest.mark.parametrize("budget", ["max_response_tokens", "max_prompt_tokens"])
def test_a_token_budget_ends_the_episode_and_tau2_scores_what_happened(budget):
    """The budget is the episode's end, not a cut: the episode ends before the call that would not
    fit (max_steps, as tau2 ends one out of steps), every token recorded fits the budget, and the
    reward is tau2's for the messages that happened."""
    spec = EpisodeSpec("airline", "1", seed=3)  # a task of several calls
    with ScriptedServer("oracle", model="qwen3", reasoning_parser="qwen3", record=False) as server:
        base = ["llm.capture=token_in", f"llm.tokenizer={model_dir('qwen3')}", "llm.reasoning_parser=qwen3"]
        [full] = run_specs(scripted_config(server, extra=base), [spec])
        first = len(full.turns[0].prompt_token_ids)
        limit = len(full.turns[0].completion_token_ids) + 1 if budget == "max_response_tokens" else first + 60
        [cut] = run_specs(scripted_config(server, extra=[*base, f"episode.{budget}={limit}"]), [spec])
    assert full.ok and full.reward == 1.0 and len(full.turns) >= 3
    assert cut.ok and cut.termination == "max_steps" and 1 <= len(cut.turns) < len(full.turns)
    assert budget in cut.budget_reached and full.budget_reached is None
    t = Trajectory.of(cut, group_id="g")
    assert t.clean
    [segment] = t.segments
    if budget == "max_response_tokens":
        assert len(segment.response_ids) <= limit
    else:
        assert all(len(turn.prompt_token_ids) <= limit for turn in cut.turns)
    task = load_domain("airline").task("1")
    reference = tau2_direct.evaluate("airline", task, tau2_messages(t), TerminationReason.MAX_STEPS, solo=False)
    assert cut.reward == reference.reward
