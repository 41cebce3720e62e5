"""The typed sweep record, corrupt-line handling, the tau2-counted summary, sweep config checks and plans."""

import json

import pytest

from rollout.core.failures import Failure, FailureClass
from rollout.core.results import EpisodeResult
from rollout.sweep.metrics import format_table, summarize
from rollout.sweep.records import EPISODES_FILE, EpisodeStore, SweepRecord, iter_records, peek_settled, read_records


def ok(task, sample=0, reward=1.0, domain="airline"):
    return SweepRecord(domain, task, sample, reward=reward)


def failed(task, cls=FailureClass.TIMEOUT, sample=0):
    return SweepRecord("airline", task, sample, failure=Failure(cls, "x"), attempts=3)


def test_record_round_trips_with_the_field_names_users_rely_on(tmp_path):
    result = EpisodeResult(domain="mock", task_id="3", sample=1, seed=7, reward=1.0, termination="user_stop",
                           messages=[{"role": "assistant", "content": "hi"}], usage={"agent": {"requests": 2}})
    rec = SweepRecord.from_result(result, attempts=2, earlier_failures=[Failure(FailureClass.MODEL_ERROR, "500")],
                                  worker=4)
    with EpisodeStore(tmp_path) as store:
        store.append(rec)
        store.append(failed("5"))
    line = json.loads((tmp_path / EPISODES_FILE).read_text().splitlines()[0])
    assert line["key"] == {"domain": "mock", "task_id": "3", "sample": 1}
    assert line["status"] == "ok" and line["reward"] == 1.0 and line["failure"] is None
    assert line["earlier_failures"] == [{"class": "model_error", "message": "500"}]
    assert {"termination", "reward_info", "messages", "usage", "durations", "attempts", "seed", "worker",
            "solo"} <= set(line)
    back = read_records(tmp_path)
    assert back[0] == rec and back[1].status == "failed" and back[1].failure_class == "timeout"


def test_corrupt_complete_lines_are_skipped_and_counted(tmp_path):
    good = json.dumps(ok("1").to_json())
    (tmp_path / EPISODES_FILE).write_text("\n".join([good, "{not json", '{"no": "key"}', good.replace('"1"', '"2"'),
                                                     '{"key": {"domain": "a"'  # cut short: no newline
                                                     ]))
    with EpisodeStore(tmp_path) as store:
        assert store.corrupt_lines == 2
        assert store.settled_keys() == {("airline", "1", 0), ("airline", "2", 0)}
    assert len(read_records(tmp_path)) == 2


def test_log_is_streamed_a_partial_tail_is_dropped_and_keys_follow_appends(tmp_path):
    lines = [json.dumps(ok(str(i)).to_json()) for i in range(50)]
    (tmp_path / EPISODES_FILE).write_text("\n".join(lines) + "\n" + lines[0][:-9])  # killed mid-line
    assert peek_settled(tmp_path) == {("airline", str(i), 0) for i in range(50)}
    records = iter_records(tmp_path)
    assert not isinstance(records, list) and next(records).task_id == "0"  # a stream, not a list
    with EpisodeStore(tmp_path) as store:
        assert store.corrupt_lines == 0 and len(store.settled_keys()) == 50
        store.append(ok("new"))
        assert ("airline", "new", 0) in store.settled_keys()
        assert [r.task_id for r in store.records()][-2:] == ["49", "new"]
    assert (tmp_path / EPISODES_FILE).read_text().endswith("\n")  # the cut line is gone, the new one whole


def test_transcripts_false_leaves_messages_out_of_the_log(tmp_path):
    rec = SweepRecord("mock", "1", 0, reward=1.0, messages=[{"role": "user", "content": "hi"}],
                      reward_info={"reward": 1.0})
    with EpisodeStore(tmp_path / "without", transcripts=False) as store:
        store.append(rec)
    with EpisodeStore(tmp_path / "with") as store:
        store.append(rec)
    without, with_ = read_records(tmp_path / "without")[0], read_records(tmp_path / "with")[0]
    assert without.messages == [] and with_.messages == rec.messages
    assert without.reward == 1.0 and without.reward_info == {"reward": 1.0}


def test_summary_counts_failed_episodes_as_tau2_does():
    rows = [ok("a", 0, 1.0), ok("a", 1, 1.0), ok("b", 0, 0.0), failed("b", sample=1),
            failed("c", FailureClass.MODEL_ERROR), ok("c", 1, 1.0)]
    s = summarize(rows, num_samples=2)["all"]
    assert s["mean_reward"] == pytest.approx(3 / 4) and s["scored"] == 4 and s["failed"] == 2
    assert s["failures"] == {"model_error": 1, "timeout": 1}
    t = s["tau2_counting"]
    assert t["mean_reward"] == pytest.approx(3 / 6)  # every failed episode is a 0.0, as tau2 records it
    assert t["pass_hat_k"]["2"] == pytest.approx((1 + 0 + 0) / 3)  # only a succeeds twice
    assert s["pass_hat_k"]["2"] == pytest.approx(1.0)  # scored only: a has 2 samples, b and c have 1
    table = format_table(summarize(rows, num_samples=2))
    assert "mean (failed=0, as tau2)" in table and "2 (model_error=1, timeout=1)" in table


@pytest.mark.parametrize("args,message", [
    (["ray.slots_per_worker=0"], "ray.slots_per_worker=0: valid: an integer >= 1"),
    (["ray.num_workers=0"], "ray.num_workers=0: valid: an integer >= 1"),
    (["ray.cpus_per_worker=0"], "ray.cpus_per_worker=0.0: valid: a number > 0"),
    (["ray.num_cpus=1", "ray.num_workers=2"], "needs 2 CPUs, but the local Ray has 1 CPUs"),
    (["ray.num_cpus=2", "ray.cpus_per_worker=4"], "needs 4 CPUs, but the local Ray has 2 CPUs"),
    (["retry.max_attempts=0"], "retry.max_attempts=0: valid: an integer >= 1"),
    (["domains=[airline"], "cannot parse override 'domains=[airline'"),
    (["domains=[airline]", "task_ids=[0,0]"], "task_ids lists '0' twice"),
    (["domains=[airline]", "split=test", "task_ids=[0]"], "are not in split 'test'"),
    (["domains=[airline]", "task_ids=[]"], "task_ids=[] selects no episode"),
])
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
    from rollout.pool.worker import capped_worker_count, worker_config

    cfg = load_config(["llm.max_concurrency=5", "user_llm.max_concurrency=1"])
    assert capped_worker_count(cfg, 4) == 1
    cfg = load_config(["llm.max_concurrency=5"])
    assert capped_worker_count(cfg, 2) == 2 and capped_worker_count(cfg, 8) == 5
    assert [worker_config(cfg, i, 2).llm.max_concurrency for i in range(2)] == [3, 2]
    assert worker_config(cfg, 0, 2).user_llm.max_concurrency == 0


def test_resume_of_a_complete_log_reads_it_once_and_starts_nothing(tmp_path, monkeypatch):
    """A rerun on a finished output_dir plans, reads the log once (not once per planned episode:
    that was quadratic) and writes the summary without starting Ray."""
    import io

    import rollout.sweep.run as run
    from rollout.env.domains import load_domain

    ids = load_domain("mock").task_ids()
    with EpisodeStore(tmp_path) as store:
        for i in ids:
            for sample in range(3):
                store.append(ok(i, sample, domain="mock"))
    reads = []
    real = run.peek_settled
    monkeypatch.setattr(run, "peek_settled", lambda d: reads.append(d) or real(d))
    monkeypatch.setattr(run, "_init_ray", lambda cfg: pytest.fail("Ray started for a complete sweep"))
    cfg, _ = run.prepare(["domains=[mock]", "num_samples=3", f"output_dir={tmp_path}", "progress=false",
                          "llm.base_url=http://127.0.0.1:9/v1", "llm.model=m", "user_llm.base_url=http://127.0.0.1:9/v1",
                          "user_llm.model=u"])
    out = io.StringIO()
    summary = run.run_sweep(cfg, out=out)
    assert len(reads) == 1 and summary["run"]["episodes_run"] == 0
    assert summary["all"]["episodes"] == 3 * len(ids) and f"{3 * len(ids)} already done in" in out.getvalue()
