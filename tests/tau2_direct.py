"""An independent reference: trajectories built by hand and scored by tau2 alone.

Nothing here uses the rollout package: it is tau2's own environment and evaluator, so the
tests can compare our rewards against what tau2 gives for the same trajectory.
"""

from __future__ import annotations

import uuid

from tau2.data_model.message import AssistantMessage, UserMessage
from tau2.data_model.simulation import SimulationRun, TerminationReason
from tau2.evaluator.evaluator import EvaluationType, evaluate_simulation
from tau2.registry import registry


def noop_reward(domain: str, task):
    """tau2's reward for: greeting, user request, agent closes, user stops."""
    messages = []
    if task.initial_state is not None and task.initial_state.message_history:
        messages = [m.model_copy(deep=True) for m in task.initial_state.message_history]
    else:
        messages.append(AssistantMessage(role="assistant", content="Hi! How can I help you today?"))
    messages += [
        UserMessage(role="user", content="I need help."),
        AssistantMessage(role="assistant", content="Sorry, I cannot help with that."),
        UserMessage(role="user", content="###STOP###"),
    ]
    return evaluate(domain, task, messages, TerminationReason.USER_STOP, solo=False)


def evaluate(domain: str, task, messages: list, termination: TerminationReason, *, solo: bool):
    """tau2's evaluation (reward and breakdown) of a trajectory of tau2 messages."""
    sim = SimulationRun(
        id=str(uuid.uuid4()),
        task_id=task.id,
        start_time="",
        end_time="",
        duration=0.0,
        termination_reason=termination,
        messages=messages,
    )
    return evaluate_simulation(sim, task, EvaluationType.ALL, solo, domain)


def tasks(domain: str):
    return registry.get_tasks_loader(domain)()
