"""The rollout pool through two weight updates, as a trainer drives it: `weight_update` pauses every
worker, the body swaps the engine's weights (the scripted server aborts its generations in flight
with the tokens so far), the new version is set and the workers resume; the second update also
moves the policy to another engine. Every episode finishes and is scored, no policy call is sent
while the pool is paused nor to the old engine after the move, and each completion token carries
the version the engine generated it under (the version set before the pool started included: the
workers are told it when they start). Ray, tau2, the Agents SDK and HTTP are real."""

from __future__ import annotations

import threading
import time
from collections import defaultdict

from rollout.env.domains import load_domain
from rollout.pool import Endpoint, RolloutPool, RolloutRequest
from rollout.scripted import ScriptedServer
from rollout.scripted.endpoints import AGENT_MODEL, USER_MODEL
from rollout.scripted.models import model_dir

TASKS = [(d, t) for d, n in (("airline", 3), ("retail", 3), ("telecom", 2)) for t in load_domain(d).task_ids()[:n]]


def agent_requests(server) -> int:
    return sum(r["role"] == "agent" for r in server.requests)


def test_pool_runs_episodes_through_two_weight_updates(ray_cluster):
    with (
        ScriptedServer("oracle", weight_version="0", token_latency_s=0.01) as old,
        ScriptedServer("oracle", weight_version="2", token_latency_s=0.01) as new,
    ):
        config = [
            f"llm.base_url={old.url}",
            f"llm.model={AGENT_MODEL}",
            f"user_llm.base_url={old.url}",
            f"user_llm.model={USER_MODEL}",
            "llm.max_retries=0",
            "llm.capture=token_in",
            f"llm.tokenizer={model_dir('qwen25')}",
            "sampling.temperature=0.0",
        ]
        requests = [RolloutRequest(d, t, sample=k) for d, t in TASKS for k in range(2)]
        held: list[tuple[int, int]] = []  # policy requests to the old engine once paused, and after a wait

        def trainer(pool: RolloutPool) -> None:
            for version, after, policy in ((1, 10, None), (2, 25, Endpoint(new.url, model=AGENT_MODEL))):
                while agent_requests(old) < after:
                    time.sleep(0.01)
                with pool.weight_update(version, policy=policy):
                    old.update_weights(version)  # aborts the generations in flight
                    time.sleep(0.2)  # a request sent just before the pause reaches the server's log
                    before = agent_requests(old)
                    time.sleep(0.5)
                    held.append((before, agent_requests(old)))

        with RolloutPool(config, ray={"num_workers": 2, "slots_per_worker": 8}) as pool:
            pool.set_weight_version(0)  # before the workers start: they are told it when they do
            updates = threading.Thread(target=trainer, args=(pool,), daemon=True)
            updates.start()
            trajectories = pool.run(requests)
            updates.join(timeout=60)
            stats = pool.stats()
            assert pool.weight_version == 2 and not stats["paused"]
        moved_at = held[-1][1]
        on_old = agent_requests(old)
        log, episodes = defaultdict(list), {}
        for server in (old, new):  # an episode's generations: on the old engine, then on the new one
            for r in server.requests:
                h = r["headers"]
                if r["role"] == "agent":
                    episodes[(h["x-rollout-domain"], h["x-rollout-task-id"], h["x-rollout-sample"])] = h["x-rollout-episode"]
            for g in server.generations:
                log[g["episode"]].append(g)

    assert len(held) == 2 and all(before == after for before, after in held), f"policy calls sent while paused: {held}"
    assert on_old == moved_at, f"{on_old - moved_at} policy calls went to the old engine after the move"
    assert all(t.ok and t.reward == 1.0 for t in trajectories), [(t.task_id, t.failure) for t in trajectories]
    continued = 0
    for t in trajectories:
        generated = log[episodes[(t.domain, t.task_id, str(t.sample))]]
        assert [i for g in generated for i in g["completion_ids"]] == [i for x in t.turns for i in x.completion_token_ids]
        server_versions = [int(v) for g in generated for v in g["versions"]]
        assert [v for x in t.turns for v in x.completion_versions] == server_versions
        assert (t.oldest_version, t.newest_version) == (min(server_versions), max(server_versions))
        assert len(generated) == sum(x.continued + 1 for x in t.turns)
        continued += sum(x.continued for x in t.turns)
    assert stats["continued_calls"] == continued >= 1, (stats["continued_calls"], continued)
    assert {t.oldest_version for t in trajectories} >= {0} and {t.newest_version for t in trajectories} >= {2}
    print(f"continued calls: {continued}; versions: {sorted({(t.oldest_version, t.newest_version) for t in trajectories})}")
