"""A sweep on a 3-node Ray cluster made with `ray.cluster_utils.Cluster`, losing a node mid-sweep.

Run by tests/ray/test_reliability.py in its own process (a Cluster needs its own
`ray.init`, which the session's local Ray in the pytest process would conflict with):

    python -m tests.ray.multinode_sweep <output_dir> <one|most> [episodes]   (from the repository root)

`one`: 6 workers over head (2 CPUs) + 2 nodes (2 CPUs each); the node holding the fewest
workers (but at least one) is removed after the 10th record. `most`: head (1 CPU), node A
(4 CPUs), node B (1 CPU); the node holding most workers is removed. The lost workers cannot
be replaced (their CPUs went with the node), so the sweep must carry on with the others.
Prints one JSON line: what was removed and what the driver did.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from rollout.core.process_env import apply_defaults  # noqa: E402

apply_defaults()

FAST_FAILURE_DETECTION = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500, "health_check_failure_threshold": 3}


def alive_workers_by_node() -> Counter:
    import ray

    actors = ray._private.state.actors(actor_state_name="ALIVE")
    return Counter(a["Address"]["NodeID"] for a in actors.values() if a.get("ActorClassName") == "RolloutWorker")


def main(out: str, scenario: str, episodes: int) -> None:
    import ray
    from ray.cluster_utils import Cluster

    from rollout.scripted import Faults, ScriptedServer
    from rollout.sweep.run import prepare, run_sweep
    from tests.helpers import sweep_args

    cpus = {"one": (2, 2, 2), "most": (1, 4, 1)}[scenario]
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": cpus[0], "include_dashboard": False, "_system_config": FAST_FAILURE_DETECTION},
    )
    nodes = [cluster.add_node(num_cpus=c) for c in cpus[1:]]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    removed: dict = {}

    def remove_a_node(driver, record):
        if removed or driver.written < 10:
            return
        by_node = alive_workers_by_node()
        candidates = [n for n in nodes if by_node.get(n.node_id, 0) > 0]
        assert candidates, f"no worker on a removable node: {dict(by_node)} vs {[n.node_id for n in nodes]}"
        pick = (max if scenario == "most" else min)(candidates, key=lambda n: by_node[n.node_id])
        removed.update(
            node=pick.node_id,
            workers_on_it=by_node[pick.node_id],
            workers_before=sum(by_node.values()),
            written_before=driver.written,
        )
        cluster.remove_node(pick, allow_graceful=False)  # a lost node: its processes are killed

    tasks, samples = episodes // 2, 2
    with ScriptedServer("oracle", faults=Faults(latency_s=0.05), record=False) as server:
        cfg, _ = prepare(
            sweep_args(
                server,
                out,
                "domains=[airline]",
                f"max_tasks={tasks}",
                f"num_samples={samples}",
                f"ray.address={cluster.address}",
                "ray.num_workers=6",
                "ray.slots_per_worker=2",
                "ray.cpus_per_worker=1",
                "ray.worker_start_timeout_s=240",
                "retry.backoff_s=0.2",
            )
        )
        drivers = []

        def on_record(driver, record):
            if not drivers:
                drivers.append(driver)
            remove_a_node(driver, record)

        summary = run_sweep(cfg, on_record=on_record).summary
    driver = drivers[0]
    print(
        json.dumps(
            {
                "removed": removed,
                "replaced_workers": driver.replaced_workers,
                "lost_slots": driver.lost_slots,
                "episodes": summary["all"]["episodes"],
                "failed": summary["all"]["failed"],
            }
        ),
        flush=True,
    )
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 60)
