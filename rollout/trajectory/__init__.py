"""Trainer-neutral trajectories: token records per policy call, the stitched view, tau2's outcome for training."""

from rollout.core.tokens import CaptureError, TurnRecord
from rollout.trajectory.credit import Credit, turn_credit
from rollout.trajectory.outcome import TRAIN_ACTIONS, train_action
from rollout.trajectory.stitch import Drift, Segment, stitch
from rollout.trajectory.trajectory import Trajectory

__all__ = [
    "TRAIN_ACTIONS",
    "CaptureError",
    "Credit",
    "Drift",
    "Segment",
    "Trajectory",
    "TurnRecord",
    "stitch",
    "train_action",
    "turn_credit",
]
