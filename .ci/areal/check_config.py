"""Load and validate an AReaL config the way launch/areal_train.py does (AReaL 1.0.4, CPU only).

    python check_config.py [areal_tau2.yaml] [key=value ...]

Runs AReaL's own `load_expr_config(argv, Tau2PPOConfig)` (OmegaConf merge of the YAML onto
PPOConfig's structured schema, MISSING checks, dataclass __post_init__ validation,
name_resolve setup and the config dump under cluster.fileroot), then prints the result.
Tau2PPOConfig is defined exactly as in launch/areal_train.py: PPOConfig + `rollout_conf: dict`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path


def main(argv: list[str]) -> None:
    from areal.api.cli_args import PPOConfig, load_expr_config
    from omegaconf import OmegaConf

    @dataclass
    class Tau2PPOConfig(PPOConfig):
        rollout_conf: dict = field(default_factory=dict)

    path = argv[0] if argv and not argv[0].count("=") else str(Path(__file__).resolve().parents[2] / "conf" / "areal_tau2.yaml")
    overrides = argv[1:] if argv and not argv[0].count("=") else argv
    config, config_file = load_expr_config(["--config", path, *overrides], Tau2PPOConfig)
    print(OmegaConf.to_yaml(OmegaConf.structured(config)))
    print(f"# OK: {config_file} validated as {type(config).__name__} (AReaL PPOConfig + rollout_conf)")
    print(
        f"# actor.backend={config.actor.backend!r} rollout.backend={config.rollout.backend!r} "
        f"rollout.agent.mode={config.rollout.agent.mode!r} scheduler.type={config.scheduler.type!r}"
    )
    print(f"# train_dataset.path={config.train_dataset.path!r} rollout_conf.domain={config.rollout_conf.get('domain')!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
