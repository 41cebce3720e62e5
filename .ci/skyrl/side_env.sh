#!/usr/bin/env bash
# Side virtualenv: SkyRL 0.3.0 (PyPI `skyrl`) without its GPU-only dependencies, plus tau2-rollout.
#   bash .ci/skyrl/side_env.sh VENV_PATH PROJECT_PATH
# Imports that work afterwards (CPU only, Python 3.11, with the TypedDict shim below):
# skyrl.train.generators.base (GeneratorInterface, GeneratorInput, GeneratorOutput, TrajectoryID,
# BatchMetadata), skyrl.train.generators.utils, skyrl.train.utils.trainer_utils
# (validate_generator_output), skyrl.train.dataset.preprocess, skyrl.train.trainer (RayPPOTrainer),
# skyrl.train.entrypoints.main_base (BasePPOExp), skyrl.train.config (SkyRLTrainConfig),
# skyrl.backends.skyrl_train.inference_servers.remote_inference_client, and the project (rollout).
#
# Python 3.11: skyrl/tinker/types.py:132 subclasses typing.TypedDict and uses it in a pydantic model
# (:137-139); pydantic refuses typing.TypedDict before 3.12, and every skyrl.train module imports it
# (skyrl/backends/__init__.py -> backend.py -> skyrl.tinker.types). Smallest shim, before any skyrl import:
#   import typing, typing_extensions
#   _td = typing.TypedDict; typing.TypedDict = typing_extensions.TypedDict
#   try: import skyrl.tinker.types
#   finally: typing.TypedDict = _td
set -euo pipefail
VENV=${1:?venv path}; PROJECT=${2:?tau2-rollout project path}
. "$(dirname "$0")/../side_env.sh"
# 1. CPU torch 2.13.0: skyrl.train imports torch everywhere.
side_venv "$VENV"
# 2. SkyRL itself, no deps: its base deps add peft==0.18.1, hf_transfer, cloudpathlib, typer, rich...
#    that the training-side modules above do not import; its skyrl-train extra adds flash-attn,
#    vllm-router, nixl, ray==2.56.0 and hydra-core==1.3.2 (omegaconf<2.4, which conflicts with
#    this project's omegaconf>=2.4.0.dev2).
"$PIP" install -q --no-deps skyrl==0.3.0
# 3. tau2-rollout (from a copy of the tree) with the runtime deps SkyRL's import chain needs, in one
#    pip call: skyrl-gym (skyrl.train.generators.skyrl_gym_generator), loguru, jaxtyping
#    (trainer, training_batch, preprocess), torchdata (trainer_utils), datasets (dataset.PromptDataset),
#    transformers in SkyRL's range. Ray stays at the project's version (SkyRL's base install does not
#    pin Ray; only its `ray` / `skyrl-train` extras pin ray==2.56.0).
install_project "$PROJECT" "skyrl-gym==0.4.0" loguru jaxtyping torchdata datasets "transformers>=5.6.1,<=5.8.0"
# 4. Smoke test.
"$VENV/bin/python" - <<'PY'
import typing, typing_extensions
_td = typing.TypedDict
typing.TypedDict = typing_extensions.TypedDict
try:
    import skyrl.tinker.types  # noqa: F401
finally:
    typing.TypedDict = _td
from skyrl.train.generators.base import BatchMetadata, GeneratorInput, GeneratorInterface, GeneratorOutput, TrajectoryID
from skyrl.train.generators.utils import merge_stepwise_output, prepare_generator_input
from skyrl.train.utils.trainer_utils import validate_generator_output
from skyrl.train.dataset.preprocess import convert_prompts_responses_to_batch_tensors
from skyrl.train.trainer import RayPPOTrainer
from skyrl.train.entrypoints.main_base import BasePPOExp
from skyrl.train.config import SkyRLTrainConfig
from skyrl.backends.skyrl_train.inference_servers.remote_inference_client import RemoteInferenceClient
import rollout
import importlib.metadata as md
print("skyrl side env OK:", {p: md.version(p) for p in ("skyrl", "skyrl-gym", "torch", "transformers", "ray", "tau2-rollout")})
PY
