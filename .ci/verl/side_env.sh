#!/usr/bin/env bash
# Side virtualenv: verl 0.9.1 without its GPU-only dependencies, plus tau2-rollout.
#   bash .ci/verl/side_env.sh VENV_PATH PROJECT_PATH
# Imports that work afterwards (CPU only, Python 3.11): verl.protocol (DataProto),
# verl.experimental.agent_loop (AgentLoopBase, AgentLoopOutput, AgentLoopWorker, AgentLoopManager,
# register), verl.workers.config, verl.workers.rollout.llm_server, verl.utils.dataset.rl_dataset,
# verl.trainer.ppo.ray_trainer, verl.trainer.main_ppo, verl.trainer.ppo.v1 (agent_loop_tq, replay_buffer,
# trainer_base), and the project (rollout).
# verl's own CPU tests for the agent loop pass in it:
#   VENV/bin/python -m pytest VENV/lib/python3.11/site-packages/tests/experimental/agent_loop/*_on_cpu.py
# NOTE: verl's wheel installs a top-level package named `tests` into site-packages (its test suite).
set -euo pipefail
VENV=${1:?venv path}; PROJECT=${2:?tau2-rollout project path}
. "$(dirname "$0")/../side_env.sh"
# 1. CPU torch 2.13.0. verl 0.9.1's base requirements name no torch (only its vllm/sglang/fsdp/cpu
#    extras pin torch==2.11.0), but peft/accelerate/tensordict need one.
side_venv "$VENV"
# 2. verl itself, no deps (its declared deps add wandb, tensorboard, pylatexenc, pybind11, ...,
#    which nothing below imports).
"$PIP" install -q --no-deps verl==0.9.1
# 3. tau2-rollout (from a copy of the tree: an in-tree build writes build/ in the repository)
#    together with the runtime deps verl's import chain needs (found by importing until nothing
#    was missing), resolved in ONE pip call so pip sees every constraint at once:
#    - tensordict 0.10.0 pulls pyvers 0.1.0, which pins packaging<26; ray[default]'s newest
#      virtualenv wants packaging>=26.3, so pip settles on an older virtualenv.
#    - hydra-core must be pinned to 1.4.0.dev1 (same pairing as the AReaL side env). This project pins
#      omegaconf>=2.4.0.dev2,<2.4.1; hydra-core 1.3.1-1.3.8 require omegaconf<2.4, so an unpinned
#      resolve picks 1.3.0 (omegaconf~=2.2), which fails at import (no antlr4: omegaconf 2.4 dropped
#      it); `>=1.4.0.dev1` picks 1.4.0rc1, which refuses verl's trainer config ("Parent traversal
#      ('..') in Defaults List ... actor/dp_actor"); 1.4.0rc2+ need omegaconf>=2.4.1rc1.
#    - cachetools (verl/workers/rollout/router.py), fastapi + uvicorn (verl/workers/rollout/utils.py,
#      reward_loop router) are imported by verl but declared only in its verl-core extra.
#    - peft, accelerate: only verl.trainer.ppo.ray_trainer / main_ppo import them.
#    - TransferQueue (+ pyzmq, msgspec; all in verl's verl-core extra): verl.trainer.ppo.v1 (the default
#      trainer, trainer.use_v1=true: TaskRunnerV1, AgentLoopManagerTQ, ReplayBuffer) imports transfer_queue.
#    - pytest, pytest-asyncio: to run verl's *_on_cpu agent-loop tests shipped in the wheel.
install_project "$PROJECT" \
  "tensordict>=0.8.0,<=0.10.0,!=0.9.0" "transformers>=5.5.3,<5.11,!=5.6.0" datasets \
  "hydra-core==1.4.0.dev1" codetiming torchdata cachetools fastapi uvicorn peft accelerate \
  "TransferQueue==0.1.11" pyzmq msgspec pytest pytest-asyncio
# 4. Smoke test.
"$VENV/bin/python" - <<'PY'
import verl, verl.protocol
from verl.experimental.agent_loop import AgentLoopBase, AgentLoopManager, AgentLoopOutput, AgentLoopWorker
from verl.experimental.agent_loop.agent_loop import register, _InternalAgentLoopOutput
from verl.workers.config import RolloutConfig, HFModelConfig, AgentLoopConfig
from verl.workers.rollout.llm_server import LLMServerClient, LLMServerManager
from verl.workers.rollout.replica import TokenOutput
import verl.trainer.ppo.ray_trainer, verl.trainer.main_ppo
from verl.trainer.ppo.v1.agent_loop_tq import AgentLoopManagerTQ, AgentLoopWorkerTQ
from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer
import rollout
import importlib.metadata as md
print("verl side env OK:", {p: md.version(p) for p in ("verl", "torch", "tensordict", "transformers", "hydra-core", "omegaconf", "TransferQueue", "ray", "tau2-rollout")})
PY
