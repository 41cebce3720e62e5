"""Scoring: tau2's own `evaluate_simulation` on the episode's trajectory, run once at the end."""

from __future__ import annotations

import asyncio
import uuid
from typing import Optional

from tau2.data_model.simulation import RewardInfo, SimulationRun, TerminationReason
from tau2.evaluator.evaluator import EvaluationType, evaluate_simulation

from rollout.core.failures import EpisodeFailure, FailureClass


def simulation_run(
    *,
    task_id: str,
    messages,
    termination: TerminationReason,
    start_time: str,
    end_time: str,
    duration: float,
    seed,
    trial: int = 0,
    run_id: Optional[str] = None,
    reward_info: Optional[RewardInfo] = None,
    skipped: bool = False,
) -> SimulationRun:
    """The episode as tau2's SimulationRun (what `tau2 run` would have saved; `skipped` with a
    failure in `reward_info`: a sample tau2's runner could not run). `run_id`: a fresh uuid if None."""
    return SimulationRun(
        id=run_id or str(uuid.uuid4()),
        task_id=task_id,
        start_time=start_time,
        end_time=end_time,
        duration=duration,
        termination_reason=termination,
        messages=messages,
        seed=seed,
        trial=trial,
        reward_info=reward_info,
        skipped=skipped,
    )


def score(simulation: SimulationRun, task, *, domain: str, solo: bool) -> RewardInfo:
    """tau2's reward for the simulation (EvaluationType.ALL, as `tau2 run` and the gym use).

    tau2's evaluator builds its predicted and gold environments with this project's
    constructor for the domain (copy-on-write copies of the warm databases, same contents
    as tau2's own constructor loads from disk).

    Raises EpisodeFailure(ENV_ERROR) when tau2's evaluator itself raises (e.g. an env
    assertion on a missing entity, or a trajectory that does not replay).
    """
    from rollout.env.domains import load_domain

    try:
        return evaluate_simulation(simulation, task, EvaluationType.ALL, solo, load_domain(domain).evaluation_domain)
    except Exception as e:
        raise EpisodeFailure(FailureClass.ENV_ERROR, f"tau2 evaluation failed: {type(e).__name__}: {e}") from None


async def score_async(simulation: SimulationRun, task, *, domain: str, solo: bool) -> RewardInfo:
    """`score` in a worker thread, so a slow evaluation does not stall other episodes."""
    return await asyncio.to_thread(score, simulation, task, domain=domain, solo=solo)
