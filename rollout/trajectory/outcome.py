"""What a trainer should do with an episode, from tau2's termination and this project's failure class.

- `train`: scored by tau2 (whatever the termination: the policy's own stop, the user's stop,
  max_steps, too_many_errors, agent_error all are the policy's outcome);
- `train_zero`: no score, but the policy caused it: the endpoint refused the conversation as
  longer than the model's context (train it as a failure, reward 0, as SkyRL's Harbor
  generator does with ContextLengthExceeded);
- `mask`: an infrastructure failure after the pool's retries (user simulator, environment,
  endpoint, timeout): keep it out of the loss; it is never a 0.0 that trains the policy;
- `retry`: a failure that a new attempt may well not have (a dead worker), when the caller
  runs attempts itself;
- `drop`: bad input or a cancelled request: not a sample at all.
"""

from __future__ import annotations

import re
from typing import Optional

from rollout.core.failures import Failure, FailureClass

TRAIN_ACTIONS = ("train", "train_zero", "mask", "retry", "drop")
_CONTEXT = re.compile(r"maximum context length|context length|context window|too many tokens|prompt is too long", re.I)


def train_action(failure: Optional[Failure]) -> str:
    """The action for an episode's outcome (see module doc)."""
    if failure is None:
        return "train"
    cls = failure.failure_class
    if cls is FailureClass.MODEL_ERROR and _CONTEXT.search(failure.message):
        return "train_zero"
    if cls in (FailureClass.INVALID_INPUT, FailureClass.CANCELLED):
        return "drop"
    if cls is FailureClass.WORKER_DIED:
        return "retry"
    return "mask"
