"""P12: an asynchronous training loop through the rollout pool against a synchronous barrier.

A simulated trainer takes `groups_per_step` groups of `group` samples per step, "trains" for a
fixed time, then updates the weights: it pauses the pool's policy calls, has the model server
swap its weights (the scripted server, in its own process, aborts every generation in flight
with the tokens generated so far and answers under the new version afterwards) and resumes.

- `sync`: each step's batch runs to its last episode (`stream_groups` over the batch), then the
  trainer trains and updates: the rollout side idles while it trains, and the trainer waits
  for the slowest episode of every batch.
- `async`: one `stream_groups` call over an endless request stream keeps `ahead` groups in
  flight under the staleness bound `max_staleness`; the trainer takes the first
  `groups_per_step` groups that complete, trains while the rest keep running, and updates the
  weights under them: calls cut by the update are continued (token-in), not restarted.

Both run on the same pool (token-in on the Qwen3 template, the same slots), alternately, `reps`
times; per run: trained episodes per hour in the steady state (from the end of the first step,
where neither mode overlaps anything yet, to the end of the last), calls aborted and continued,
groups dropped for staleness and the largest staleness seen. Goal: async >= 2x sync.
"""

from __future__ import annotations

import itertools
import json
import time
import urllib.request

from rollout.bench.common import episode_config, scripted_process
from rollout.bench.pool_training import DOMAINS, LOCAL_RAY, _medians
from rollout.env.domains import load_domain

GOAL = 2.0


def update_weights(url: str, version: int) -> None:
    """Have the scripted server swap to `version` (it aborts what is in flight)."""
    body = json.dumps({"version": version}).encode()
    request = urllib.request.Request(url.removesuffix("/v1") + "/update_weights", body, {"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=30).read()


def _tasks():
    ids = {d: load_domain(d).task_ids() for d in DOMAINS}
    return [(d, ids[d][i]) for i in range(max(map(len, ids.values()))) for d in DOMAINS if i < len(ids[d])]


def _groups(group: int, version):
    """An endless stream of groups (tasks round-robin over the domains), stamped with the version
    current when the pool reads them."""
    from rollout.pool import RolloutRequest

    for n, (domain, task) in enumerate(itertools.cycle(_tasks())):
        for k in range(group):
            yield RolloutRequest(domain, task, sample=k, group_id=f"g{n}", weight_version=version())


class _Trainer:
    """The simulated trainer: its version, the episodes it trained on, the staleness it saw."""

    def __init__(self, pool, url: str, train_s: float):
        self.pool, self.url, self.train_s = pool, url, train_s
        self.version = pool.weight_version or 0
        self.episodes = self.steps = 0
        self.max_staleness = 0
        self.marks: list[tuple[float, int]] = []  # (time, episodes trained) after each step

    def per_hour(self) -> float:
        """Episodes trained per hour from the end of the first step to the end of the last: the
        steady state (in the first step neither mode overlaps anything yet)."""
        (t0, e0), (t1, e1) = self.marks[0], self.marks[-1]
        return 3600 * (e1 - e0) / (t1 - t0)

    def step(self, groups: list) -> None:
        for g in groups:
            for t in g:
                if t.oldest_version is not None:
                    self.max_staleness = max(self.max_staleness, self.version - t.oldest_version)
            self.episodes += len(g)
        time.sleep(self.train_s)  # the training step
        self.steps += 1
        self.version += 1
        with self.pool.weight_update(self.version):
            update_weights(self.url, self.version)
        self.marks.append((time.perf_counter(), self.episodes))


def _sync(pool, url: str, steps: int, group: int, per_step: int, train_s: float) -> _Trainer:
    trainer = _Trainer(pool, url, train_s)
    stream = _groups(group, lambda: trainer.version)
    for _ in range(steps):
        batch = list(itertools.islice(stream, group * per_step))
        trainer.step(list(pool.stream_groups(batch)))
    return trainer


def _async(pool, url: str, steps: int, group: int, per_step: int, train_s: float, ahead: int, eta: int) -> _Trainer:
    trainer = _Trainer(pool, url, train_s)
    taken: list = []
    calls = pool.stream_groups(_groups(group, lambda: trainer.version), ahead=ahead, max_staleness=eta, groups_per_step=per_step)
    for g in calls:
        taken.append(g)
        if len(taken) == per_step:
            trainer.step(taken)
            taken = []
            if trainer.steps == steps:
                break
    calls.close()  # what is still in flight is cancelled
    return trainer


def _run(mode: str, pool, server, **kw) -> dict:
    before = pool.stats()
    trainer = (_sync if mode == "sync" else _async)(pool, server.url, **kw)
    after = pool.stats()
    return {
        "episodes_per_hour": trainer.per_hour(),
        "episodes": trainer.episodes,
        "continued_calls": after.get("continued_calls", 0) - before.get("continued_calls", 0),
        "stale_groups": after["stale_groups"] - before["stale_groups"],
        "max_staleness_seen": trainer.max_staleness,
    }


def bench_p12(
    quick: bool = False,
    *,
    steps: int = 6,
    group: int = 8,
    groups_per_step: int = 8,
    slots: int = 64,
    latency: float = 0.3,
    token_latency_ms: float = 5.0,
    train_s: float = 8.0,
    eta: int = 2,
    reps: int = 2,
) -> dict:
    if quick:  # a smoke run, not a measurement
        steps, group, groups_per_step, slots, latency, token_latency_ms, train_s, reps = 3, 2, 2, 4, 0.02, 1.0, 0.2, 1
    from rollout.pool import RolloutPool
    from rollout.scripted.models import model_dir

    ahead = 2 * groups_per_step
    runs: dict[str, list[dict]] = {"sync": [], "async": []}
    server_kw = {"model": "qwen3", "reasoning_parser": "qwen3", "token_latency_ms": token_latency_ms}
    with scripted_process(latency, **server_kw) as server:
        extra = ["sampling=train", "llm.capture=token_in", f"llm.tokenizer={model_dir('qwen3')}", "llm.reasoning_parser=qwen3"]
        cfg = episode_config(server.url, *extra)
        with RolloutPool(cfg, ray={"num_workers": 2, "slots_per_worker": max(1, slots // 2), **LOCAL_RAY}) as pool:
            pool.start(DOMAINS)
            pool.set_weight_version(0)
            kw = {"steps": steps, "group": group, "per_step": groups_per_step, "train_s": train_s}
            _sync(pool, server.url, **dict(kw, steps=1, train_s=0.0))  # warm: clients, tokenizers, domains
            for rep in range(reps):  # alternate, and swap which goes first, so drift hits both alike
                for mode in ("sync", "async") if rep % 2 == 0 else ("async", "sync"):
                    extra = {"ahead": ahead, "eta": eta} if mode == "async" else {}
                    runs[mode].append(_run(mode, pool, server, **kw, **extra))
    keys = ("episodes_per_hour", "episodes", "continued_calls", "stale_groups", "max_staleness_seen")
    row: dict = _medians(runs, keys)
    row["ratio"] = round(row["async"]["episodes_per_hour"] / row["sync"]["episodes_per_hour"], 3)
    row.update(
        goal=GOAL,
        steps=steps,
        group=group,
        groups_per_step=groups_per_step,
        in_flight=slots,
        ahead_groups=ahead,
        max_staleness=eta,
        latency_s=latency,
        token_latency_ms=token_latency_ms,
        train_s=train_s,
        reps=reps,
    )
    return row
