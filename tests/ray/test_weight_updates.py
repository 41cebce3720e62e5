"""The rollout pool through two weight updates, as a trainer drives it: `weight_update` pauses every
worker, the body swaps the engine's weights (the scripted server aborts its generations in flight
with the tokens so far), the new version is set and the workers resume. Every episode finishes
and is scored, no policy call is sent while the pool is paused, and each completion token carries
the version the server generated it under (the version set before the pool started included:
the workers are told it when they start). Ray, tau2, the Agents SDK and HTTP are real."""

from __future__ import annotations

import threading
import time
from collections import defaultdict

from rollout.env.domains import load_domain
from rollout.pool import RolloutPool, RolloutRequest
from rollout.scripted import ScriptedServer
from rollout.scripted.endpoints import AGENT_MODEL, USER_MODEL
from rollout.scripted.models import model_dir

TASKS = [(d, t) for d, n in (("airline", 3), ("retail", 3), ("telecom", 2)) for t in load_domain(d).task_ids()[:n]]


def test_pool_runs_episodes_through_two_weight_updates(ray_cluster):
    with ScriptedServer("oracle", weight_version="0", token_latency_s=0.004) as server:
        config = [
            f"llm.base_url={server.url}",
            f"llm.model={AGENT_MODEL}",
            f"user_llm.base_url={server.url}",
            f"user_llm.model={USER_MODEL}",
            "llm.max_retries=0",
            "llm.capture=token_in",
            f"llm.tokenizer={model_dir('qwen25')}",
            "sampling.temperature=0.0",
        ]
        requests = [RolloutRequest(d, t, sample=k) for d, t in TASKS for k in range(2)]

        def sent() -> int:
            return sum(r["role"] == "agent" for r in server.requests)

        held: list[tuple[int, int]] = []  # (policy requests when paused, after a wait inside the update)

        def trainer(pool: RolloutPool) -> None:
            for version, after in ((1, 10), (2, 25)):
                while sent() < after:
                    time.sleep(0.01)
                with pool.weight_update(version):
                    before = sent()
                    server.update_weights(version)  # aborts the generations in flight
                    time.sleep(0.5)
                    held.append((before, sent()))

        with RolloutPool(config, ray={"num_workers": 2, "slots_per_worker": 8}) as pool:
            pool.set_weight_version(0)  # before the workers start: they are told it when they do
            updates = threading.Thread(target=trainer, args=(pool,), daemon=True)
            updates.start()
            trajectories = pool.run(requests)
            updates.join(timeout=60)
            stats = pool.stats()
            assert pool.weight_version == 2 and not stats["paused"]
        episodes = {
            (r["headers"]["x-rollout-domain"], r["headers"]["x-rollout-task-id"], r["headers"]["x-rollout-sample"]): r["headers"][
                "x-rollout-episode"
            ]
            for r in server.requests
            if r["role"] == "agent"
        }
        log = defaultdict(list)
        for g in server.generations:
            log[g["episode"]].append(g)

    assert len(held) == 2 and all(before == after for before, after in held), f"policy calls sent while paused: {held}"
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
