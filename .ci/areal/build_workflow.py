"""How far launch/areal_train.py gets without a GPU: up to AReaL's own workflow object.

    python build_workflow.py [PROJECT_PATH] [--try-trainer]

Real AReaL 1.0.4 code used here:
  * areal.api.cli_args.load_expr_config(argv, Tau2PPOConfig)       (config, as areal_train.py)
  * areal.PPOTrainer._requires_proxy_workflow(workflow)            (trainer's "agent class -> proxy" test)
  * areal.engine.sglang_remote.RemoteSGLangEngine(config.rollout)  (constructed only, never initialize()d:
        initialize() would connect to / launch SGLang servers, which need GPUs)
  * RemoteInfEngine._resolve_workflow(workflow, workflow_kwargs, group_size, proxy_addr)
        the function that turns "rollout.areal.Tau2Agent" + workflow_kwargs into a RolloutWorkflow:
        import_from_string -> Tau2Agent(**kwargs) -> OpenAIProxyWorkflow(mode=rollout.agent.mode, ...)
        -> GroupedRolloutWorkflow(..., group_size=gconfig.n_samples)
Not real: engine._engine.logger is set by hand (initialize() sets it), and proxy_addr: on a cluster RolloutController.start_proxy() starts the proxy
workers (needs the inference servers); here it is an address nothing listens on (never contacted).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
HERE = Path(__file__).resolve().parent


def load_config():
    from areal.api.cli_args import PPOConfig, load_expr_config

    @dataclass
    class Tau2PPOConfig(PPOConfig):
        rollout_conf: dict = field(default_factory=dict)

    config, _ = load_expr_config(["--config", str(HERE.parents[1] / "conf" / "areal_tau2.yaml")], Tau2PPOConfig)
    return config


def launcher_bits(project: str | None):
    """WORKFLOW and workflow_kwargs() from the project's launch/areal_train.py (if the path has it)."""
    if project and (Path(project) / "launch" / "areal_train.py").exists():
        sys.path.insert(0, project)
        from launch.areal_train import WORKFLOW, workflow_kwargs  # noqa: E402

        return WORKFLOW, workflow_kwargs, f"{project}/launch/areal_train.py"

    def workflow_kwargs(rollout_conf, *, sampling, max_tokens=None):  # same as launch/areal_train.py
        from rollout.areal import Tau2Agent

        kw = {k: v for k, v in rollout_conf.items() if k not in ("domain", "split_train", "split_eval", "min_rows")}
        kw["sampling"] = {"preset": sampling, **({"max_tokens": max_tokens} if max_tokens else {})}
        Tau2Agent(**kw)
        return kw

    return "rollout.areal.Tau2Agent", workflow_kwargs, "copy of launch/areal_train.py's workflow_kwargs"


def main(argv):
    project = next((a for a in argv if not a.startswith("--")), None)
    from rollout.core.process_env import apply_defaults

    apply_defaults()  # an entry point, as launch/areal_train.py: offline, tau2 quiet
    config = load_config()
    print(
        f"1. load_expr_config OK: actor.backend={config.actor.backend} rollout.backend={config.rollout.backend} "
        f"agent.mode={config.rollout.agent.mode} n_samples={config.gconfig.n_samples}"
    )

    WORKFLOW, workflow_kwargs, src = launcher_bits(project)
    kwargs = workflow_kwargs(config.rollout_conf, sampling="train", max_tokens=config.gconfig.max_new_tokens)
    print(f"2. workflow={WORKFLOW!r} workflow_kwargs ({src}) = {kwargs}")

    from areal import PPOTrainer

    needs_proxy = PPOTrainer._requires_proxy_workflow(None, WORKFLOW)  # method does not touch self
    print(f"3. PPOTrainer._requires_proxy_workflow({WORKFLOW!r}) = {needs_proxy}  (-> trainer starts proxy workers)")

    from areal.engine.sglang_remote import RemoteSGLangEngine

    engine = RemoteSGLangEngine(config.rollout)  # no initialize(): no SGLang server is contacted
    from areal.utils import logging as areal_logging

    # initialize() would set this (remote_inf_engine.py:429) after connecting to the servers.
    engine._engine.logger = areal_logging.getLogger("[RemoteInfEngine Rank 0]")
    wf = engine._engine._resolve_workflow(
        WORKFLOW, kwargs, group_size=config.gconfig.n_samples, proxy_addr="http://127.0.0.1:9/never-contacted"
    )
    inner = wf.workflow
    print(f"4. RemoteInfEngine._resolve_workflow -> {type(wf).__module__}.{type(wf).__name__}(group_size={wf.group_size})")
    print(
        f"   .workflow -> {type(inner).__module__}.{type(inner).__name__}(mode={inner.mode!r}, "
        f"discount={inner.discount}, export_style={inner.export_style!r})"
    )
    print(f"   .workflow.agent -> {type(inner.agent).__module__}.{type(inner.agent).__name__}")

    if "--try-trainer" in argv:
        from datasets import Dataset

        rows = Dataset.from_list([{"domain": "airline", "task_id": "12", "split": "train"}] * 16)
        try:
            with PPOTrainer(config, train_dataset=rows, valid_dataset=rows):
                print("5. PPOTrainer constructed (unexpected without a GPU)")
        except BaseException as e:  # noqa: BLE001
            print(f"5. PPOTrainer(config, ...) stops without a GPU: {type(e).__name__}: {str(e)[:300]}")


if __name__ == "__main__":
    main(sys.argv[1:])
