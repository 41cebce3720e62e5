"""P4: memory per in-flight airline episode vs the airline DB's in-memory size.

`bench_p4(in_flight)` measures it in a fresh process (`python -m rollout.bench.memory N`, which
prints the row as JSON) so that the other rows do not pollute its RSS.
"""

from __future__ import annotations

import asyncio
import copy
import gc
import json
import subprocess
import sys

from rollout.core.process_env import apply_defaults


def bench_p4(in_flight: int) -> dict:
    """The P4 row, measured in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-m", "rollout.bench.memory", str(in_flight)], capture_output=True, text=True, check=True, timeout=900
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(in_flight: int) -> dict:
    """The P4 row, measured in this process: RSS growth per episode with `in_flight` episodes held
    in flight by a slow model, and the RSS growth of one more copy of the airline DB."""
    from rollout.agent.episode import EpisodeSpec, check_episode
    from rollout.agent.runner import EpisodeRunner
    from rollout.bench.common import episode_config, rss_mib, scripted_server
    from rollout.env.domains import load_domain

    assets = load_domain("airline")
    gc.collect()
    before = rss_mib()
    db_copy = copy.deepcopy(assets._db)  # the DB's in-memory size: RSS growth of one more copy
    gc.collect()
    db_mib = rss_mib() - before
    del db_copy
    with scripted_server(latency=1.0) as url:  # slow model: every episode stays in flight
        cfg = episode_config(url)
        ids = assets.task_ids()

        async def main():
            async with EpisodeRunner(cfg, slots=in_flight) as runner:
                await runner.run(check_episode(EpisodeSpec("airline", ids[0]), cfg))
                gc.collect()
                base = rss_mib()
                peak = base
                tasks = [
                    asyncio.ensure_future(runner.run(check_episode(EpisodeSpec("airline", ids[i % len(ids)], sample=i), cfg)))
                    for i in range(in_flight)
                ]
                while not all(t.done() for t in tasks):
                    peak = max(peak, rss_mib())
                    await asyncio.sleep(0.05)
                results = [t.result() for t in tasks]
                assert all(r.reward == 1.0 for r in results)
                return (peak - base) / in_flight

        per_episode = asyncio.run(main())
    return {
        "mib_per_episode": round(per_episode, 3),
        "db_mib": round(db_mib, 2),
        "ratio": round(per_episode / db_mib, 3),
        "in_flight": in_flight,
    }


if __name__ == "__main__":
    apply_defaults()
    print(json.dumps(measure(int(sys.argv[1]))))
