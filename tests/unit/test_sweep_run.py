"""rollout.sweep.run before Ray: misconfiguration is exit 2 with nothing written; a finished log is not rerun.
(Worker caps: rollout.pool.cluster's split of them.)"""

import pytest

from rollout.core.failures import Failure, FailureClass
from rollout.sweep.records import EpisodeStore, SweepRecord

pytestmark = pytest.mark.unit


def ok(task, sample=0, reward=1.0, domain="airline"):
    return SweepRecord(domain, task, sample, reward=reward)


def failed(task, cls=FailureClass.TIMEOUT, sample=0):
    return SweepRecord("airline", task, sample, failure=Failure(cls, "x"), attempts=3)


@pytest.mark.parametrize(
    "args,message",
    [
        (["ray.slots_per_worker=0"], "ray.slots_per_worker=0: valid: an integer >= 1"),
        (["ray.num_workers=0"], "ray.num_workers=0: valid: an integer >= 1"),
        (["ray.cpus_per_worker=0"], "ray.cpus_per_worker=0.0: valid: a number > 0"),
        (["ray.num_cpus=1", "ray.num_workers=2"], "needs 2 CPUs, but the local Ray has 1 CPUs"),
        (["ray.num_cpus=2", "ray.cpus_per_worker=4"], "needs 4 CPUs, but the local Ray has 2 CPUs"),
        (["retry.max_attempts=0"], "retry.max_attempts=0: valid: an integer >= 1"),
        (["retry.backoff_s=-1"], "retry.backoff_s=-1.0: valid: a number >= 0"),
        (["ray.object_store_mb=50"], "ray.object_store_mb=50: valid: an integer >= 75"),
        (["num_samples=0"], "num_samples=0: valid: an integer >= 1"),
        (["max_tasks=0"], "max_tasks=0: valid: an integer >= 1, or null"),
        (["domains=[airline"], "cannot parse override 'domains=[airline'"),
        (["domains=[airline]", "task_ids=[0,0]"], "task_ids lists '0' twice"),
        (["domains=[airline]", "split=test", "task_ids=[0]"], "are not in split 'test'"),
        (["domains=[airline]", "task_ids=[]"], "task_ids=[] selects no episode"),
    ],
)
def test_misconfiguration_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, args, message):
    from rollout.cli import main

    out = tmp_path / "out"
    assert main(["sweep", f"output_dir={out}", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not out.exists()


def test_output_dir_that_is_a_file_is_exit_2(tmp_path, capsys):
    from rollout.cli import main

    (tmp_path / "f").write_text("x")
    assert main(["sweep", f"output_dir={tmp_path / 'f'}"]) == 2
    assert "output_dir=" in capsys.readouterr().err and (tmp_path / "f").read_text() == "x"


def test_caps_are_split_exactly_and_bound_the_worker_count():
    from rollout.core.config import load_config
    from rollout.pool.cluster import worker_config, worker_count
    from rollout.pool.config import RayConfig

    cfg = load_config(["llm.max_concurrency=5", "user_llm.max_concurrency=1"])
    assert worker_count(cfg, RayConfig(num_workers=4), cpus=8) == 1
    cfg = load_config(["llm.max_concurrency=5"])
    assert worker_count(cfg, RayConfig(num_workers=2), cpus=8) == 2
    assert worker_count(cfg, RayConfig(num_workers=8), cpus=8) == 5
    assert [worker_config(cfg, i, 2).llm.max_concurrency for i in range(2)] == [3, 2]
    assert worker_config(cfg, 0, 2).user_llm.max_concurrency == 0


def test_resume_of_a_complete_log_reads_it_once_and_starts_nothing(tmp_path, monkeypatch):
    """A rerun on a finished output_dir plans, reads the log once (not once per planned episode:
    that was quadratic) and writes the summary without starting Ray."""
    import io

    import rollout.pool.pool
    import rollout.sweep.run as run
    from rollout.commands.sweep import print_start
    from rollout.env.domains import load_domain

    ids = load_domain("mock").task_ids()
    with EpisodeStore(tmp_path) as store:
        for i in ids:
            for sample in range(3):
                store.append(ok(i, sample, domain="mock"))
    reads = []
    real = run.latest
    monkeypatch.setattr(run, "latest", lambda path: reads.append(path) or real(path))
    monkeypatch.setattr(rollout.pool.pool, "connect", lambda r: pytest.fail("Ray started for a complete sweep"))
    cfg, _ = run.prepare(
        [
            "domains=[mock]",
            "num_samples=3",
            f"output_dir={tmp_path}",
            "progress=false",
            "llm.base_url=http://127.0.0.1:9/v1",
            "llm.model=m",
            "user_llm.base_url=http://127.0.0.1:9/v1",
            "user_llm.model=u",
        ]
    )
    out = io.StringIO()
    result = run.run_sweep(cfg, on_start=lambda start: print_start(start, out))
    assert len(reads) == 1 and result.summary["run"]["episodes_run"] == 0 and result.all_scored
    assert result.summary["all"]["episodes"] == 3 * len(ids) and f"{3 * len(ids)} already done in" in out.getvalue()
