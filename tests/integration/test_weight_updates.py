"""Episodes that run through weight swaps, against the scripted server over HTTP.

The server plays the engine: each generated token of the policy takes a few milliseconds, and a
weight swap (`POST /update_weights`) aborts every generation in flight with the tokens generated
so far, as vLLM and SGLang do. The runner's weight state is paused, the server swapped, the new
version set and the state resumed, again and again while the episodes run. Checked against the
server's own log and against the same episodes played without a swap: token-in calls are
continued token for token (ids, logprobs and the version of each token as the server generated
them), chat calls are sent again from scratch, tau2 records the same messages and gives the same
reward, and a paused runner sends no policy call.

Only the model is scripted: tau2, the Agents SDK, HTTP and the episode core run for real."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections import defaultdict

import pytest

from rollout.agent.episode import EpisodeSpec, check_episode
from rollout.agent.runner import EpisodeRunner, PolicyEndpoint
from rollout.core.failures import InvalidInput
from rollout.env.domains import load_domain
from rollout.pool import Endpoint, RolloutPool
from rollout.scripted import ScriptedServer
from rollout.scripted.models import model_dir
from tests.helpers import run_specs, scripted_config

pytestmark = pytest.mark.integration

TOKEN_LATENCY_S = 0.004  # a 50-token completion is in flight for 0.2 s
SWAP_EVERY_S = 0.15  # token-in: a call continued after each swap finishes however long it is
# chat: a call sent again from scratch needs a whole generation between two swaps (the longest
# completion here, 105 tokens, takes 0.42 s)
CHAT_TOKEN_LATENCY_S, CHAT_SWAP_EVERY_S = 0.004, 0.5


def specs() -> list[EpisodeSpec]:
    out = []
    for domain, n in (("airline", 2), ("retail", 1), ("telecom", 1)):
        out += [EpisodeSpec(domain, t, sample=0, seed=11) for t in load_domain(domain).task_ids()[:n]]
    return out


def config(server, capture, engine="vllm", model="qwen25", parser=None, extra=()):
    overrides = ["sampling.temperature=0.0", *extra]
    overrides += [f"llm.capture={capture}"] if capture else ["llm.capture=null"]
    if capture == "token_in":
        overrides += [f"llm.tokenizer={model_dir(model)}", f"llm.engine={engine}"]
        overrides += [f"llm.reasoning_parser={parser}"] if parser else []
    return scripted_config(server, extra=overrides)


def swap_over_http(server, version: int) -> dict:
    """The trainer's side of a swap: POST /update_weights at the server's root."""
    root = server.url.removesuffix("/v1")
    request = urllib.request.Request(
        f"{root}/update_weights", json.dumps({"version": version}).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def run_through_swaps(
    server, cfg, episodes: list[EpisodeSpec], every_s: float = SWAP_EVERY_S, tell_runner: bool = True, grace_s: float = 0.05
) -> tuple[list, int]:
    """Run the episodes while the weights are swapped every `every_s`: pause, give the request
    sent last `grace_s` to reach the server, swap the server's weights, set the new version,
    resume (`tell_runner` False: the server's swap alone). (results, the last version)."""

    async def main():
        async with EpisodeRunner(cfg) as runner:
            runner.weights.set(0)
            task = asyncio.ensure_future(runner.run_many([check_episode(e, cfg) for e in episodes], concurrency=len(episodes)))
            version = 0
            while True:
                await asyncio.wait({task}, timeout=every_s)
                if task.done():
                    return task.result(), version
                version += 1
                if tell_runner:
                    runner.weights.pause()
                    await runner.weights.settle(grace_s)
                assert (await asyncio.to_thread(swap_over_http, server, version))["version"] == str(version)
                if tell_runner:
                    runner.weights.set(version)
                    runner.weights.resume()

    return asyncio.run(main())


def episode_ids(server) -> dict[tuple, str]:
    """(domain, task id) -> the episode id its requests carried."""
    return {
        (r["headers"].get("x-rollout-domain"), r["headers"].get("x-rollout-task-id")): r["headers"].get("x-rollout-episode")
        for r in server.requests
        if r["role"] == "agent"
    }


def log_by_episode(server) -> dict[str, list[dict]]:
    out = defaultdict(list)
    for g in server.generations:
        out[g["episode"]].append(g)
    return out


def shown(result) -> list[tuple]:
    """What tau2 recorded, without call ids and timestamps."""
    return [
        (m["role"], m.get("content"), [(c["name"], c["arguments"]) for c in m.get("tool_calls") or []]) for m in result.messages
    ]


def reference(capture, engine="vllm", model="qwen25", parser=None, style="plain") -> dict[tuple, object]:
    """The same episodes on a server that never swaps its weights."""
    with ScriptedServer("oracle", model=model, reasoning_parser=parser, reply_style=style, record=False) as server:
        results = run_specs(config(server, capture, engine, model, parser), specs(), concurrency=4)
    return {(r.domain, r.task_id): r for r in results}


TOKEN_IN = [
    ("vllm-qwen25", "vllm", "qwen25", None, "plain"),
    ("sglang-qwen3-thinking", "sglang", "qwen3", "qwen3", "text_with_calls"),
]


@pytest.mark.parametrize("name, engine, model, parser, style", TOKEN_IN, ids=[c[0] for c in TOKEN_IN])
def test_token_in_calls_are_continued_token_for_token(name, engine, model, parser, style):
    with ScriptedServer(
        "oracle", model=model, reasoning_parser=parser, reply_style=style, weight_version="0", token_latency_s=TOKEN_LATENCY_S
    ) as server:
        results, last = run_through_swaps(server, config(server, "token_in", engine, model, parser), specs())
        episodes, log = episode_ids(server), log_by_episode(server)
    whole = reference("token_in", engine, model, parser, style)

    continued_with_tokens = 0
    for r in results:
        ref = whole[(r.domain, r.task_id)]
        assert r.ok and r.reward == ref.reward == 1.0, (r.task_id, r.failure, r.termination)
        assert shown(r) == shown(ref), f"{r.task_id}: tau2 recorded different messages"
        assert len(r.turns) == len(ref.turns)
        entries = iter(log[episodes[(r.domain, r.task_id)]])
        for turn, ref_turn in zip(r.turns, ref.turns):
            # the episode's tokens are those of the episode without a swap
            assert turn.prompt_token_ids == ref_turn.prompt_token_ids
            assert turn.completion_token_ids == ref_turn.completion_token_ids
            assert turn.completion_logprobs == ref_turn.completion_logprobs
            # and, call by call, what the server generated: prompt + the tokens so far re-sent, the rest joined
            done = 0
            for k in range(turn.continued + 1):
                g = next(entries)
                assert g["partial"] == done and g["prompt_ids"] == turn.prompt_token_ids + turn.completion_token_ids[:done]
                n = len(g["completion_ids"])
                assert turn.completion_token_ids[done : done + n] == g["completion_ids"]
                assert turn.completion_logprobs[done : done + n] == g["logprobs"]
                assert turn.completion_versions[done : done + n] == [int(v) for v in g["versions"]]
                assert g["finish_reason"] == ("abort" if k < turn.continued else turn.finish_reason)
                continued_with_tokens += k > 0 and done > 0
                done += n
            assert done == len(turn.completion_token_ids)
        assert next(entries, None) is None, f"{r.task_id}: the server generated more than the episode recorded"
        versions = [v for t in r.turns for v in t.completion_versions]
        assert r.usage["agent"]["continued"] == sum(t.continued for t in r.turns)
        assert None not in versions and max(versions) <= last
    assert continued_with_tokens >= 1, "no call was aborted with tokens generated: nothing was continued"
    assert any(len({v for t in r.turns for v in t.completion_versions}) > 1 for r in results)


def test_a_call_sent_just_before_a_pause_is_generated_by_the_weights_it_was_sent_under():
    """Requests take 30 ms to reach the engine (vLLM reports no version): the runner's pause
    gives the request sent last 0.1 s to arrive before the swap, so every token's version, the
    one current when its request was sent, is the one the server generated it under. With no
    grace a request sent just before the pause arrives after the swap and is stamped a version
    too old."""
    with ScriptedServer("oracle", weight_version="0", token_latency_s=TOKEN_LATENCY_S) as server:
        server.weights.arrival_s = 0.03
        results, last = run_through_swaps(server, config(server, "token_in"), specs(), grace_s=0.1)
        episodes, log = episode_ids(server), log_by_episode(server)
    assert last >= 3
    for r in results:
        assert r.ok and r.reward == 1.0, (r.task_id, r.failure)
        served = [int(v) for g in log[episodes[(r.domain, r.task_id)]] for v in g["versions"]]
        assert [v for t in r.turns for v in t.completion_versions] == served, r.task_id


def test_the_version_sglang_reports_is_each_tokens():
    """The engine's swaps alone (the runner is told nothing, its version stays 0): SGLang reports
    the version of every answer, and that is what each token records."""
    with ScriptedServer("oracle", weight_version="0", token_latency_s=TOKEN_LATENCY_S) as server:
        results, last = run_through_swaps(server, config(server, "token_in", "sglang"), specs(), tell_runner=False)
        episodes, log = episode_ids(server), log_by_episode(server)
    for r in results:
        assert r.ok and r.reward == 1.0, (r.task_id, r.failure)
        generated = log[episodes[(r.domain, r.task_id)]]
        assert [v for t in r.turns for v in t.completion_versions] == [int(v) for g in generated for v in g["versions"]]
    assert max(v for r in results for t in r.turns for v in t.completion_versions) > 0, "no token came after a swap"


@pytest.mark.parametrize("capture", ["token_ids", None], ids=["chat-capture", "no-capture"])
def test_chat_calls_are_sent_again_from_scratch(capture):
    with ScriptedServer("oracle", weight_version="0", token_latency_s=CHAT_TOKEN_LATENCY_S) as server:
        results, _ = run_through_swaps(server, config(server, capture), specs(), every_s=CHAT_SWAP_EVERY_S)
        episodes, log = episode_ids(server), log_by_episode(server)
    whole = reference(capture)

    restarted = 0
    for r in results:
        ref = whole[(r.domain, r.task_id)]
        assert r.ok and r.reward == ref.reward == 1.0, (r.task_id, r.failure, r.termination)
        assert shown(r) == shown(ref), f"{r.task_id}: tau2 recorded different messages"
        generations = log[episodes[(r.domain, r.task_id)]]
        aborted = [g for g in generations if g["finish_reason"] == "abort"]
        answered = [g for g in generations if g["finish_reason"] != "abort"]
        assert r.usage["agent"]["restarted"] == len(aborted)
        restarted += len(aborted)
        if capture:
            assert sum(t.restarted for t in r.turns) == len(aborted) and len(r.turns) == len(answered)
            for turn, ref_turn, g in zip(r.turns, ref.turns, answered):
                assert turn.completion_token_ids == ref_turn.completion_token_ids == g["completion_ids"]
                assert turn.completion_logprobs == g["logprobs"]
                assert turn.completion_versions == [int(v) for v in g["versions"]]  # the answering version, every token
    assert restarted >= 1, "no chat call was aborted: nothing was sent again"


def test_a_paused_runner_sends_no_policy_call():
    """Paused before the episodes start: none is sent until resume. Paused while they run: the
    calls in flight end, then none is sent for longer than an episode's budget, which the wait
    does not use up; after resume every episode finishes and is scored."""
    with ScriptedServer("oracle", token_latency_s=0.002) as server:
        cfg = config(server, "token_in", extra=["episode.timeout_s=4"])

        def sent() -> int:
            return sum(r["role"] == "agent" for r in server.requests)

        async def main():
            async with EpisodeRunner(cfg) as runner:
                runner.weights.pause()
                task = asyncio.ensure_future(runner.run_many([check_episode(e, cfg) for e in specs()], concurrency=4))
                await asyncio.sleep(2.0)
                held_at_start = sent()
                runner.weights.resume()
                while sent() < 3 and not task.done():
                    await asyncio.sleep(0.01)
                runner.weights.pause()
                await asyncio.sleep(0.5)  # the generations in flight end
                before = sent()
                await asyncio.sleep(5.0)
                after = sent()
                runner.weights.resume()
                return held_at_start, before, after, await task

        held_at_start, before, after, results = asyncio.run(main())
    assert held_at_start == 0, f"{held_at_start} policy calls were sent while paused"
    assert after == before, f"{after - before} policy calls were sent while paused"
    assert all(r.ok and r.reward == 1.0 for r in results), [(r.task_id, r.failure) for r in results]


def test_a_new_policy_endpoint_takes_every_call_sent_after_it():
    """The trainer moves the policy to another engine while episodes run: every policy call sent
    after that (continuations of the calls the old engine aborted included) goes to the new one,
    and the episodes are those played without a move."""
    with (
        ScriptedServer("oracle", token_latency_s=TOKEN_LATENCY_S) as old,
        ScriptedServer("oracle", token_latency_s=TOKEN_LATENCY_S) as new,
    ):
        cfg = config(old, "token_in")

        def sent(server) -> int:
            return sum(r["role"] == "agent" for r in server.requests)

        async def main():
            async with EpisodeRunner(cfg) as runner:
                task = asyncio.ensure_future(runner.run_many([check_episode(e, cfg) for e in specs()], concurrency=4))
                while sent(old) < 4:
                    await asyncio.sleep(0.01)
                runner.weights.pause()
                await asyncio.to_thread(swap_over_http, old, 1)
                await asyncio.sleep(0.2)  # a request sent just before the pause is logged by the server
                at_pause = sent(old)
                runner.weights.set(1, policy=PolicyEndpoint(base_url=new.url))
                runner.weights.resume()
                return at_pause, await task

        at_pause, results = asyncio.run(main())
        on_old, on_new = sent(old), sent(new)
    whole = reference("token_in")
    assert on_old == at_pause and on_new > 0, (at_pause, on_old, on_new)
    for r in results:
        ref = whole[(r.domain, r.task_id)]
        assert r.ok and r.reward == 1.0 and shown(r) == shown(ref), (r.task_id, r.failure)
        assert [t.completion_token_ids for t in r.turns] == [t.completion_token_ids for t in ref.turns]


@pytest.mark.parametrize(
    "call, named",
    [
        (lambda p: p.set_weight_version("3"), "version='3'"),
        (lambda p: p.set_weight_version(True), "version=True"),
        (lambda p: p.set_weight_version(-1), "version=-1"),
        (lambda p: p.set_weight_version(2, policy="http://127.0.0.1:9/v1"), "policy= is str"),
        (lambda p: p.weight_update(1.5).__enter__(), "version=1.5"),
        (lambda p: p.pause(grace_s=-1), "grace_s=-1"),
        (lambda p: p.weight_update(1, grace_s="0.1").__enter__(), "grace_s='0.1'"),
    ],
)
def test_bad_weight_calls_are_refused_naming_the_field(call, named):
    pool = RolloutPool(["llm.base_url=http://127.0.0.1:9/v1", "llm.model=m"])
    try:
        with pytest.raises(InvalidInput, match="valid") as e:
            call(pool)
        assert named in str(e.value)
        assert pool.weight_version is None and not pool.stats()["paused"] and pool.dispatcher is None
    finally:
        pool.close()


def test_weight_versions_only_go_up_and_a_closed_pool_refuses():
    pool = RolloutPool(["llm.base_url=http://127.0.0.1:9/v1", "llm.model=m"])
    pool.set_weight_version(2, policy=Endpoint("http://127.0.0.1:9/v1", model="m"))
    pool.set_weight_version(2)
    with pytest.raises(InvalidInput, match=r"version=1: valid: an integer >= 2"):
        pool.set_weight_version(1)
    with pytest.raises(RuntimeError, match="the body failed"):
        with pool.weight_update(3):
            assert pool.stats()["paused"]
            raise RuntimeError("the body failed")
    assert pool.weight_version == 2 and not pool.stats()["paused"]  # resumed, not set
    assert pool.dispatcher is None  # recorded for the workers it will start
    pool.close()
    with pytest.raises(RuntimeError, match="closed"):
        pool.pause()
