"""TAU2 in verl: an agent loop (`AgentLoopBase`) that runs each sample's episode on the rollout pool.

Route: a registered agent loop, not a replacement `agent_loop_manager_class`. verl's own
`AgentLoopWorker` keeps batching, padding, reward placement and the DataProto / TransferQueue
plumbing of both its trainers (v1, the default in 0.9.1, and the deprecated v0), and calls
`run(sampling_params, **row)` for every sample; this loop hands the sample to the pool (one
process-wide pool per AgentLoopWorker process, created from the loop's config) and turns the
trajectory into the one contiguous sequence verl trains on. A manager of our own would have to
redo that plumbing for each trainer version. Register it with `agent_loop_config_path`:

    # tau2_agent_loops.yaml
    - name: tau2_agent
      _target_: rollout.trainers.verl.Tau2AgentLoop
      pool:                                   # RolloutPool(config, ray=..., retry=...): this project's keys
        config: {user_llm: {base_url: "http://user-sim:8000/v1", model: Qwen/Qwen2.5-72B-Instruct}}
        ray: {num_workers: 4, slots_per_worker: 32}

and rows with `agent_name: tau2_agent` and the columns `tau2_domain`, `tau2_task_id` (see
`dataset_rows`). The policy endpoint is verl's own inference servers: each episode acquires one
server from verl's load balancer (`acquire_server` with the episode's id: sticky, least in
flight across episodes, so an episode's calls share one prefix cache) and releases it when the
episode ends. The weight version is verl's `global_steps` (v1 passes it to `run`; under v0 it
is unknown); the sampling parameters are verl's (temperature, top_p, top_k,
repetition_penalty) on every policy request, each call bounded by `max_tokens =
response_length` as verl's own server bounds it.

Token capture defaults to `token_in`: the episode's context is kept as ids with verl's model
(`actor_rollout_ref.model.path` as `llm.tokenizer`) and sent to the server's token route
(`llm.engine` = verl's rollout name: vLLM's `/v1/completions`, SGLang's `/generate`), so every
episode is one sequence whatever the chat template does to history. The pool config may set
`llm.capture: token_ids` for chat capture instead (append-only templates only; see docs/pool.md).

What `run` returns (never raises: verl gathers the loops with `asyncio.gather`):

- a scored episode that is one clean stitched sequence: its prompt ids, the response (the
  completions with loss mask 1 and their logprobs, the tokens between them with mask 0), tau2's
  reward as `reward_score`, `num_turns`; a response longer than `response_length` is cut there,
  as verl's own tool agent loop cuts it (`extra_fields["tau2_truncated"]`);
- anything else (a failed episode, an episode split by drift, a first prompt longer than
  `prompt_length`): a dropped sample, as verl expects one: one response token with mask 0, so
  it carries no loss, reward 0.0 (verl needs a score for every sample; note that GRPO's group
  mean still sees it), and why in `extra_fields["tau2_dropped"]`.

Every sample carries the same `extra_fields` keys (verl concatenates chunks by key).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from typing import Any, Optional

from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopMetrics, AgentLoopOutput

from rollout.core.failures import described, frames
from rollout.pool import Endpoint, RolloutPool, RolloutRequest
from rollout.trajectory import Trajectory

log = logging.getLogger(__name__)

SAMPLING_KEYS = ("temperature", "top_p", "top_k", "repetition_penalty")
_POOLS: dict[str, RolloutPool] = {}  # one pool per AgentLoopWorker process, by its settings
_POOLS_LOCK = threading.Lock()
_SAMPLES: OrderedDict[str, int] = OrderedDict()  # uid -> samples asked so far (v0 passes no sample index)
_SAMPLES_KEPT = 65536  # the most recent groups only: a training run sees millions of uids


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
    """verl's sampling params as chat-completions fields vLLM accepts."""
    out = {k: params[k] for k in SAMPLING_KEYS if params.get(k) is not None}
    if out.get("top_k") == -1:
        out.pop("top_k")  # vLLM's "off"
    return out


def shared_pool(settings: dict, *, model_path: str = "", engine: str = "vllm") -> RolloutPool:
    """The process's pool for these settings ({"config", "ray", "retry"}), token capture on:
    `token_in` with verl's model directory and rollout engine unless the config's `llm` says
    otherwise."""
    key = repr((sorted(settings.items()), model_path, engine))
    with _POOLS_LOCK:
        if key not in _POOLS:
            config = dict(settings.get("config") or {})
            llm = dict(config.get("llm") or {})
            llm.setdefault("capture", "token_in")
            if llm["capture"] == "token_in":
                llm.setdefault("tokenizer", model_path)
                llm.setdefault("engine", engine)
            config["llm"] = llm
            _POOLS[key] = RolloutPool(config, ray=settings.get("ray"), retry=settings.get("retry"))
        return _POOLS[key]


EXTRA_KEYS = (
    "tau2_domain",
    "tau2_task_id",
    "tau2_reward",
    "tau2_train_action",
    "tau2_dropped",
    "tau2_truncated",
    "tau2_boundaries_split",
    "min_global_steps",
    "max_global_steps",
)


class Tau2AgentLoop(AgentLoopBase):
    """See the module doc. `pool`: the pool's settings (from the agent loop config YAML)."""

    def __init__(self, *args, pool: Optional[dict] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.pool = shared_pool(
            dict(pool or {}), model_path=str(self.config.actor_rollout_ref.model.path), engine=str(self.rollout_config.name)
        )
        self.prompt_length = int(self.rollout_config.prompt_length)
        self.response_length = int(self.rollout_config.response_length)

    async def run(self, sampling_params: dict[str, Any], **kwargs) -> AgentLoopOutput:
        balancer = self.server_manager._load_balancer
        episode_id, server = uuid.uuid4().hex, None
        try:
            server, _ = await balancer.acquire_server.remote(request_id=episode_id)
            request = await self.request(sampling_params, kwargs, str(server))
            [trajectory] = await self.pool.arun([request])
        except Exception as e:  # never raise into verl's gather: the sample is dropped
            log.warning("tau2 sample dropped: %s\n%s", described(e), frames(e))
            return self.dropped(described(e)[:300], kwargs)
        finally:
            if server is not None:
                balancer.release_server.remote(server_id=server)
        return self.output(trajectory, kwargs)

    async def request(self, sampling_params: dict, row: dict, address: str) -> RolloutRequest:
        """The pool request of one sample, against verl's server at `address` (host:port)."""
        uid = str(row.get("uid", row.get("index", "")))
        if "session_id" in row:
            sample = int(row["session_id"])
        else:
            with _POOLS_LOCK:
                sample = _SAMPLES[uid] = _SAMPLES.pop(uid, -1) + 1
                while len(_SAMPLES) > _SAMPLES_KEPT:
                    _SAMPLES.popitem(last=False)
        version = row.get("global_steps")
        return RolloutRequest(
            str(row["tau2_domain"]),
            str(row["tau2_task_id"]),
            sample=sample,
            group_id=uid,
            weight_version=int(version) if version is not None else None,
            policy=Endpoint(
                f"http://{address}/v1", extra_body={"max_tokens": self.response_length, **chat_sampling(sampling_params)}
            ),
        )

    def output(self, t: Trajectory, row: dict) -> AgentLoopOutput:
        """The sequence verl trains on (see module doc)."""
        if t.train_action != "train":
            return self.dropped(t.failure.failure_class.value if t.failure else t.train_action, row, t)
        if not t.clean:
            return self.dropped(f"split by drift ({t.drift.split} boundaries)" if t.drift.split else "tokens absent", row, t)
        [segment] = t.segments
        if len(segment.prompt_ids) > self.prompt_length:
            return self.dropped(f"first prompt of {len(segment.prompt_ids)} tokens > prompt_length", row, t)
        n = self.response_length
        extra = self._extra(row, t, dropped="", truncated=len(segment.response_ids) > n)
        return AgentLoopOutput(
            prompt_ids=list(segment.prompt_ids),
            response_ids=segment.response_ids[:n],
            response_mask=segment.response_mask[:n],
            response_logprobs=segment.response_logprobs[:n],
            reward_score=float(t.reward),
            num_turns=len(t.result.messages),
            metrics=AgentLoopMetrics(generate_sequences=float(t.result.durations.get("total_s", 0.0))),
            extra_fields=extra,
        )

    def dropped(self, why: str, row: dict, t: Optional[Trajectory] = None) -> AgentLoopOutput:
        eos = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0
        return AgentLoopOutput(
            prompt_ids=[eos],
            response_ids=[eos],
            response_mask=[0],
            response_logprobs=[0.0],
            reward_score=0.0,
            num_turns=0,
            metrics=AgentLoopMetrics(),
            extra_fields=self._extra(row, t, dropped=why, truncated=False),
        )

    @staticmethod
    def _extra(row: dict, t: Optional[Trajectory], *, dropped: str, truncated: bool) -> dict[str, Any]:
        version = row.get("global_steps", -1)
        version = -1 if version is None else int(version)
        return {
            "tau2_domain": str(row.get("tau2_domain", "")),
            "tau2_task_id": str(row.get("tau2_task_id", "")),
            "tau2_reward": float(t.reward) if t is not None and t.ok else float("nan"),
            "tau2_train_action": t.train_action if t is not None else "drop",
            "tau2_dropped": dropped,
            "tau2_truncated": truncated,
            "tau2_boundaries_split": t.drift.split if t is not None else 0,
            "min_global_steps": version,
            "max_global_steps": version,
        }
