"""Train a tau2 agent with AReaL, rollouts by this project: an example launcher.

    python -m launch.areal_train --config conf/areal_tau2.yaml rollout_conf.domain=airline \\
        rollout_conf.user_llm.base_url=http://user-sim:8000/v1 rollout_conf.user_llm.model=Qwen/Qwen2.5-72B-Instruct

AReaL (not a dependency of this project; install it on the training cluster) builds
`rollout.areal.Tau2Agent(**workflow_kwargs)` and awaits its `run(data, base_url=...,
api_key=..., http_client=...)` n_samples times per row (`gconfig.n_samples`); an
infrastructure failure raises and AReaL drops the group. The workflow kwargs come from this
project's conf (`workflow_kwargs()` below): sampling presets (train for training, eval for
evaluation), the user simulator endpoint, episode limits, the env backend. The rows come
from `rollout.areal.dataset` (tau2's train/test splits).
"""

from __future__ import annotations

import sys
from typing import Any, Optional

WORKFLOW = "rollout.areal.Tau2Agent"


def workflow_kwargs(rollout_conf: dict[str, Any], *, sampling: str, max_tokens: Optional[int] = None) -> dict[str, Any]:
    """Tau2Agent kwargs from this project's config keys, validated now (not mid-training)."""
    from rollout.areal import Tau2Agent

    kwargs = {k: v for k, v in rollout_conf.items() if k not in ("domain", "split_train", "split_eval", "min_rows")}
    kwargs["sampling"] = {"preset": sampling, **({"max_tokens": max_tokens} if max_tokens else {})}
    Tau2Agent(**kwargs)  # raises InvalidInput on a bad key or type
    return kwargs


def datasets_for(rollout_conf: dict[str, Any]):
    """(train, valid) HuggingFace Datasets of tau2 rows (as `tau2-rollout dataset` writes them)."""
    from datasets import Dataset

    from rollout.areal.dataset import dataset_rows

    domain = rollout_conf.get("domain", "airline")
    train = dataset_rows(domain, rollout_conf.get("split_train", "train"), min_rows=int(rollout_conf.get("min_rows", 128)))
    valid = dataset_rows(domain, rollout_conf.get("split_eval", "test"))
    return Dataset.from_list(train), Dataset.from_list(valid)


def main(argv: list[str]) -> None:
    from dataclasses import dataclass, field

    from rollout.core.process_env import apply_defaults

    apply_defaults()  # first: before AReaL and tau2 are imported (AReaL's processes inherit the variables)
    try:
        from areal import PPOTrainer
        from areal.api.cli_args import PPOConfig, load_expr_config
    except ImportError:
        sys.exit("AReaL is not installed here: install it on the training cluster (pip install areal)")

    @dataclass
    class Tau2PPOConfig(PPOConfig):
        rollout_conf: dict = field(default_factory=dict)

    config, _ = load_expr_config(argv, Tau2PPOConfig)
    train, valid = datasets_for(config.rollout_conf)
    max_tokens = getattr(config.gconfig, "max_new_tokens", None)
    with PPOTrainer(config, train_dataset=train, valid_dataset=valid) as trainer:
        trainer.train(
            workflow=WORKFLOW,
            workflow_kwargs=workflow_kwargs(config.rollout_conf, sampling="train", max_tokens=max_tokens),
            eval_workflow=WORKFLOW,
            eval_workflow_kwargs=workflow_kwargs(config.rollout_conf, sampling="eval", max_tokens=max_tokens),
        )


if __name__ == "__main__":
    main(sys.argv[1:])
