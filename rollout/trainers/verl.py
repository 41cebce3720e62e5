"""TAU2 in verl: an agent loop (`AgentLoopBase`) that runs each sample's episode on the rollout pool.

Route: a registered agent loop, not a replacement `agent_loop_manager_class`. verl's own
`AgentLoopWorker` keeps batching, padding, reward placement and the DataProto / TransferQueue
plumbing of both its trainers (v1, the default in 0.9.1, and the deprecated v0), and calls
`run(sampling_params, **row)` for every sample; this loop hands the sample to the pool (one
process-wide pool per AgentLoopWorker process, created from the loop's config) and turns the
trajectory into what verl trains (verl_samples.py: which sequences, with which reward, on v1
and on v0). A manager of our own would have to redo that plumbing for each trainer version.
Register it with `agent_loop_config_path`:

    # tau2_agent_loops.yaml
    - name: tau2_agent
      _target_: rollout.trainers.verl.Tau2AgentLoop
      pool:                                   # RolloutPool(config, ray=..., retry=..., seed=...)
        config: {user_llm: {base_url: "http://user-sim:8000/v1", model: Qwen/Qwen2.5-72B-Instruct}}
        ray: {num_workers: 4, slots_per_worker: 32}
        seed: 0                               # the run's base seed

and rows with `agent_name: tau2_agent` and the columns `tau2_domain`, `tau2_task_id` (see
`dataset_rows`). The policy endpoint is verl's own inference servers: each episode acquires one
server from verl's load balancer (`acquire_server` with the episode's id: sticky, least in
flight across episodes, so an episode's calls share one prefix cache) and releases it when the
episode ends. The sampling parameters are verl's (temperature, top_p, top_k,
repetition_penalty) on every policy request, each call bounded by `max_tokens =
response_length` as verl's own server bounds it. Which trainer runs is verl's config
(`trainer.use_v1`).

Each request names its sample within the group (`verl_samples.sample_of`: v1's `session_id`,
v0's batch position) and carries an explicit seed: the pool's rule over the run's base seed,
the episode and the trainer's step (`global_steps`, which v1 passes to `run`), so every step
samples afresh. `min/max_global_steps` are the versions that served the episode's calls.

Token capture defaults to `token_in`: the episode's context is kept as ids with verl's model
(`actor_rollout_ref.model.path` as `llm.tokenizer`) and sent to the server's token route
(`llm.engine` = verl's rollout name: vLLM's `/v1/completions`, SGLang's `/generate`), so every
episode is one sequence whatever the chat template does to history, and the episode ends where
its response would outgrow `response_length` (`episode.max_response_tokens`): tau2 scores the
episode that happened, and that sequence trains with that reward. The pool config may set
`llm.capture: token_ids` for chat capture instead (append-only templates only, no budget; see
docs/pool.md): there a sequence over the budget is dropped, never cut.

`run` never raises (verl gathers the loops with `asyncio.gather`). v1 gets a list of outputs
(one per stitched segment; `[]` leaves the session out of its group); v0 gets one output,
a masked placeholder for a dropped sample. Every output carries the same `extra_fields` keys
(verl concatenates them by key), among them `reward_extra_info` with `tau2_dropped` and
`tau2_over_budget` (0 or 1), which verl carries into its reward extra info (validation metrics,
rollout dumps).
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any, Optional, Union

from omegaconf import OmegaConf
from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopMetrics, AgentLoopOutput

from rollout.core.failures import described, frames
from rollout.pool import Endpoint, RolloutPool, RolloutRequest
from rollout.trainers.verl_samples import Budget, Plan, episode_seed, plan, sample_of, served_versions
from rollout.trajectory import Trajectory

log = logging.getLogger(__name__)

SAMPLING_KEYS = ("temperature", "top_p", "top_k", "repetition_penalty")
_POOLS: dict[str, RolloutPool] = {}  # one pool per AgentLoopWorker process, by its settings
_POOLS_LOCK = threading.Lock()


def dataset_rows(rows: list[dict], *, agent_name: str = "tau2_agent") -> list[dict]:
    """verl dataset rows for tau2 data rows ({"domain", "task_id"}): the prompt verl's dataset
    requires (a placeholder: the pool builds tau2's own), the agent loop's name, the tau2 columns."""
    return [
        {
            "prompt": [{"role": "user", "content": f"{r['domain']}/{r['task_id']}"}],
            "data_source": "tau2",
            "agent_name": agent_name,
            "tau2_domain": r["domain"],
            "tau2_task_id": str(r["task_id"]),
        }
        for r in rows
    ]


def chat_sampling(params: dict) -> dict[str, Any]:
    """verl's sampling params as request fields vLLM accepts."""
    out = {k: params[k] for k in SAMPLING_KEYS if params.get(k) is not None}
    if out.get("top_k") == -1:
        out.pop("top_k")  # vLLM's "off"
    return out


def shared_pool(
    settings: dict, *, model_path: str = "", engine: str = "vllm", response_length: Optional[int] = None
) -> RolloutPool:
    """The process's pool for these settings ({"config", "ray", "retry", "seed"}), token capture
    on: `token_in` with verl's model directory and rollout engine unless the config's `llm` says
    otherwise; under `token_in` the episode ends where its response would outgrow
    `response_length` (`episode.max_response_tokens`, unless the config sets it)."""
    key = repr((sorted(settings.items()), model_path, engine, response_length))
    with _POOLS_LOCK:
        if key not in _POOLS:
            config = dict(settings.get("config") or {})
            llm = dict(config.get("llm") or {})
            llm.setdefault("capture", "token_in")
            if llm["capture"] == "token_in":
                llm.setdefault("tokenizer", model_path)
                llm.setdefault("engine", engine)
                if response_length is not None:
                    config["episode"] = {"max_response_tokens": response_length, **(config.get("episode") or {})}
            config["llm"] = llm
            _POOLS[key] = RolloutPool(
                config, ray=settings.get("ray"), retry=settings.get("retry"), seed=int(settings.get("seed") or 0)
            )
        return _POOLS[key]


def uses_v1(config) -> bool:
    """Whether verl's v1 trainer runs the loop (`trainer.use_v1`, verl's own switch)."""
    return bool(OmegaConf.select(config, "trainer.use_v1", default=False))


class Tau2AgentLoop(AgentLoopBase):
    """See the module doc. `pool`: the pool's settings (from the agent loop config YAML)."""

    def __init__(self, *args, pool: Optional[dict] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.budget = Budget(int(self.rollout_config.prompt_length), int(self.rollout_config.response_length))
        self.pool = shared_pool(
            dict(pool or {}),
            model_path=str(self.config.actor_rollout_ref.model.path),
            engine=str(self.rollout_config.name),
            response_length=self.budget.response_length,
        )
        self.v1 = uses_v1(self.config)

    async def run(self, sampling_params: dict[str, Any], **kwargs) -> Union[AgentLoopOutput, list[AgentLoopOutput]]:
        episode_id, server, trajectory = uuid.uuid4().hex, None, None
        try:
            server, _ = await self.server_manager._acquire_server(episode_id)
            [trajectory] = await self.pool.arun([self.request(sampling_params, kwargs, str(server))])
            chosen = plan(trajectory, self.budget, v1=self.v1)
        except Exception as e:  # never raise into verl's gather: the sample is dropped
            log.warning("tau2 sample dropped: %s\n%s", described(e), frames(e))
            chosen = Plan(dropped=described(e)[:300])
        finally:
            if server is not None:
                self.server_manager._release_server(server, request_id=episode_id)
        return self.outputs(chosen, trajectory, kwargs)

    def request(self, sampling_params: dict, row: dict, address: str) -> RolloutRequest:
        """The pool request of one sample, against verl's server at `address` (host:port)."""
        domain, task = str(row["tau2_domain"]), str(row["tau2_task_id"])
        sample, _ = sample_of(row)
        step = row.get("global_steps")
        step = int(step) if step is not None else None
        return RolloutRequest(
            domain,
            task,
            sample=sample,
            group_id=str(row.get("uid", row.get("index", ""))),
            seed=episode_seed(self.pool.seed, step, domain, task, sample),
            weight_version=step,
            policy=Endpoint(
                f"http://{address}/v1",
                extra_body={"max_tokens": self.budget.response_length, **chat_sampling(sampling_params)},
            ),
        )

    def outputs(self, chosen: Plan, t: Optional[Trajectory], row: dict) -> Union[AgentLoopOutput, list[AgentLoopOutput]]:
        """What verl gets (module doc): v1 a list, v0 one output."""
        extra = self._extra(chosen, t, row)
        if not chosen.segments:
            log.info("tau2 sample %s/%s dropped: %s", row.get("tau2_domain"), row.get("tau2_task_id"), chosen.dropped)
            return [] if self.v1 else self._placeholder(extra)
        total_s = float(t.result.durations.get("total_s", 0.0)) if t is not None else 0.0
        outs = [
            AgentLoopOutput(
                prompt_ids=list(s.prompt_ids),
                response_ids=list(s.response_ids),
                response_mask=list(s.response_mask),
                response_logprobs=list(s.response_logprobs),
                reward_score=chosen.reward,
                num_turns=len(t.result.messages),
                metrics=AgentLoopMetrics(generate_sequences=total_s if i == 0 else 0.0),
                extra_fields=dict(extra, reward_extra_info=dict(extra["reward_extra_info"])),
            )
            for i, s in enumerate(chosen.segments)
        ]
        return outs if self.v1 else outs[0]

    def _placeholder(self, extra: dict) -> AgentLoopOutput:
        """v0's dropped sample: one masked token, reward 0.0 (v0 needs a row and a score)."""
        eos = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0
        return AgentLoopOutput(
            prompt_ids=[eos],
            response_ids=[eos],
            response_mask=[0],
            response_logprobs=[0.0],
            reward_score=0.0,
            num_turns=0,
            metrics=AgentLoopMetrics(),
            extra_fields=extra,
        )

    @staticmethod
    def _extra(chosen: Plan, t: Optional[Trajectory], row: dict) -> dict[str, Any]:
        step = row.get("global_steps")
        low, high = served_versions(t, int(step) if step is not None else None)
        segments = chosen.segments
        return {
            "tau2_domain": str(row.get("tau2_domain", "")),
            "tau2_task_id": str(row.get("tau2_task_id", "")),
            "tau2_sample": int(t.sample) if t is not None else -1,
            "tau2_reward": float(t.reward) if t is not None and t.ok else float("nan"),
            "tau2_train_action": t.train_action if t is not None else "drop",
            "tau2_drop_reason": chosen.dropped,
            "tau2_segments": len(segments),
            "tau2_boundaries_split": t.drift.split if t is not None else 0,
            "min_global_steps": low,
            "max_global_steps": high,
            "reward_extra_info": {
                "tau2_dropped": 0.0 if segments else 1.0,
                "tau2_over_budget": 1.0 if chosen.over_budget else 0.0,
            },
        }
