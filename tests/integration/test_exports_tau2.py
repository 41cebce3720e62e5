"""The exported tau2 Results carry what tau2's runner would: a failed sample as tau2 skips one,
and `llm_args` with only the settings the requests carried."""

from rollout.core.config import load_config, to_dict
from rollout.core.failures import Failure, FailureClass
from rollout.sweep.exports import results_header, simulation_of
from rollout.sweep.records import SweepRecord


def test_a_failed_sample_is_exported_as_tau2_skips_one():
    record = SweepRecord("mock", "create_task_1", 2, failure=Failure(FailureClass.TIMEOUT, "x"), durations={"total_s": 3.5})
    sim = simulation_of(record)
    assert sim.skipped and sim.reward_info.reward == 0.0 and sim.messages == []
    assert sim.start_time and sim.start_time == sim.end_time and sim.duration == 0.0  # tau2: start = end = now, 0.0


def test_llm_args_hold_only_the_settings_sent():
    cfg = to_dict(load_config(["sampling.extra_body={top_k: 20}", "sampling.temperature=0.7"]))
    info = results_header(domain="mock", solo=False, task_ids=["create_task_1"], num_trials=1, config=cfg).info
    assert info.agent_info.llm_args == {"temperature": 0.7, "top_k": 20}
    cfg["sampling"]["temperature"] = None
    cfg["sampling"]["extra_body"] = {}
    info = results_header(domain="mock", solo=True, task_ids=["create_task_1"], num_trials=1, config=cfg).info
    assert info.agent_info.llm_args is None and info.user_info.llm_args is None
