"""TAU2 episodes through verl 0.9.1's own agent-loop code, both trainers, on a CPU, against the scripted server.

    SIDE_PY .ci/verl/check_agent_loop.py PROJECT_PATH

verl's own code (nothing of it patched): its trainer config (`hydra.compose` of `ppo_trainer`),
its load balancer (`GlobalRequestLoadBalancer`: each episode acquires one server and releases
it), and for each trainer the worker that runs agent loops:

v0 (`trainer.use_v1=false`): `AgentLoopWorker` (the real constructor: RolloutConfig,
HFModelConfig, tokenizer, the agent loops of `agent_loop_config_path`) and its
`generate_sequences(DataProto)`: sampling parameters, `hydra.utils.instantiate` of our
`Tau2AgentLoop`, `run`, `_agent_loop_postprocess` (padding, masks, position ids, logprobs),
`_postprocess` (the DataProto batch, `rm_scores`, reward extra info). Checks, on the batch,
against the trajectories the pool returned:
  * `rm_scores` holds tau2's reward on each sample's last response token (0.0 and 1.0 present);
  * `response_mask` covers exactly the policy's tokens: under it, `responses` holds each call's
    completion ids in order; `rollout_log_probs` under it are the captured logprobs, one to one;
  * verl's sampling (temperature, and `max_tokens` = response_length) reaches every policy request;
  * every server acquired is released; the samples of a group have distinct numbers and seeds;
  * a failed episode is a dropped sample (mask all zero), never raised and never scored, and
    counted in the reward extra info (`tau2_dropped`);
  * the checks FAIL on a deliberately broken loop output (a logprob shifted by one, one mask
    bit flipped).

v1 (the default): verl's `AgentLoopWorkerTQ` (a Ray actor) runs one GRPO group of 4 sessions
(`session_id` 0..3) over TransferQueue, verl's `ReplayBuffer` samples it, and verl's
`compute_advantage_for_multi_trajectories` (GRPO) computes the advantages. The group's four
sessions land on four servers (least in flight): two oracles whose replies put a sentence
before each tool call (chat capture splits those episodes into segments), a policy that closes
at once (tau2: 0.0) and a server that fails every policy call. Checks: the failed session has
no output; each split episode is one output per segment, tau2's reward on each; the advantages
are those of the kept rewards [1, 0, 1] alone: +0.577 / -1.155 (a 0.0 for the failure would
give +0.866 / -0.866).

Not verl's: the inference servers (the scripted server in vLLM's token mode, with a real
tokenizer and Qwen2.5's template, stands in for verl's vLLM servers) and the model directory
(the scripted server's tokenizer with a tiny model config, no weights: verl reads only its
tokenizer and config here). Exit status 1 on any failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROWS = [{"domain": "airline", "task_id": "12"}, {"domain": "mock", "task_id": "create_task_1"}]
N_SAMPLES = 2
PROMPT_LEN, RESPONSE_LEN = 8192, 8192
STEP = 7
GROUP_TASK = {"domain": "mock", "task_id": "create_task_1"}  # the v1 group's task (the oracle solves it: 1.0)
KEPT_ADVANTAGES = (0.5774, -1.1547)  # GRPO over the kept rewards [1, 0, 1]: (1 - 2/3) / std, (0 - 2/3) / std


def check(name: str, ok: bool, detail: str, failures: list[str]) -> None:
    print(f"  [{'ok' if ok else 'FAIL'}] {name}: {detail}")
    if not ok:
        failures.append(name)


def verl_config(model: str, loops_yaml: str, *, use_v1: bool, response_length: int = RESPONSE_LEN):
    import verl
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=os.path.join(os.path.dirname(verl.__file__), "trainer", "config"), version_base=None):
        return compose(
            config_name="ppo_trainer",
            overrides=[
                f"trainer.use_v1={str(use_v1).lower()}",
                f"actor_rollout_ref.model.path={model}",
                "actor_rollout_ref.rollout.name=vllm",
                f"actor_rollout_ref.rollout.prompt_length={PROMPT_LEN}",
                f"actor_rollout_ref.rollout.response_length={response_length}",
                "actor_rollout_ref.rollout.calculate_log_probs=true",
                "actor_rollout_ref.rollout.temperature=0.7",
                "actor_rollout_ref.rollout.n=4",
                "transfer_queue.backend.SimpleStorage.num_data_storage_units=1",
                f"actor_rollout_ref.rollout.agent.agent_loop_config_path={loops_yaml}",
            ],
        )


def batch():
    """A v0 batch as verl's trainer hands it to the worker: n samples per row, interleaved, and
    `priority` (each row's position in the batch), which AgentLoopManager sets before it splits
    the batch across workers. v0 passes no step to the loop (it is only in meta_info)."""
    import numpy as np
    import torch
    from verl.protocol import DataProto

    from rollout.trainers.verl import dataset_rows

    rows = [r for r in dataset_rows(ROWS) for _ in range(N_SAMPLES)]
    n = len(rows)
    columns = {
        k: np.array([r[k] for r in rows], dtype=object) for k in ("agent_name", "tau2_domain", "tau2_task_id", "data_source")
    }
    columns["raw_prompt"] = np.array([r["prompt"] for r in rows] + [None], dtype=object)[:n]
    columns["uid"] = np.array([f"uid-{i // N_SAMPLES}" for i in range(n)], dtype=object)
    columns["index"] = np.array([i // N_SAMPLES for i in range(n)], dtype=object)
    columns["priority"] = np.arange(n, dtype=np.int64)
    columns["check_row"] = np.array(list(range(n)), dtype=object)  # which row a loop ran (for the spy)
    return DataProto.from_single_dict(
        {"dummy_tensor": torch.zeros(n, 1, dtype=torch.uint8), **columns}, meta_info={"global_steps": STEP, "validate": False}
    )


def verify(out, trajectories, response_length: int = RESPONSE_LEN) -> list[str]:
    """Problems of verl's batch against the trajectories (empty: none)."""
    problems = []
    b = out.batch
    for r, t in enumerate(trajectories):
        mask = b["response_mask"][r].bool()
        under = b["responses"][r][mask].tolist()
        logprobs = b["rollout_log_probs"][r][mask].tolist()
        score = b["rm_scores"][r]
        last = int(b["attention_mask"][r, PROMPT_LEN:].sum()) - 1
        if t is None or t.train_action != "train" or not t.clean:
            if mask.any() or float(score.sum()) != 0.0:
                problems.append(f"row {r}: a dropped sample carries loss or a score")
            continue
        calls = [c for c in t.turns if c is not None and c.message_index is not None]
        if under != [i for c in calls for i in c.completion_token_ids][:response_length]:
            problems.append(f"row {r}: the tokens under response_mask are not the policy's")
        expected = [x for c in calls for x in c.completion_logprobs][:response_length]
        if len(logprobs) != len(expected) or any(abs(a - b) > 1e-5 for a, b in zip(logprobs, expected)):
            problems.append(f"row {r}: rollout_log_probs under the mask are not the captured ones")
        if abs(float(score[last]) - t.reward) > 1e-6 or abs(float(score.sum()) - t.reward) > 1e-6:
            problems.append(f"row {r}: rm_scores {float(score.sum())} at {last}, tau2 gave {t.reward}")
    return problems


async def generate(worker, seen: list, corrupt: str = ""):
    """verl's generate_sequences, with a spy keeping each loop's trajectory (and, to show the checks
    can fail, corrupting what the loop hands back)."""
    from rollout.trainers.verl import Tau2AgentLoop

    original = Tau2AgentLoop.outputs
    left = {"corruptions": 1 if corrupt else 0}

    def spy(self, chosen, t, row):
        out = original(self, chosen, t, row)
        seen.append((int(row["check_row"]), t))
        if left["corruptions"] and sum(out.response_mask) > 2:  # the first sample with a sequence to break
            left["corruptions"] -= 1
            if corrupt == "logprob":
                out.response_logprobs = out.response_logprobs[1:] + out.response_logprobs[:1]
            else:
                out.response_mask = out.response_mask[:-1] + [0]
        return out

    Tau2AgentLoop.outputs = spy
    try:
        return await worker.generate_sequences(batch())
    finally:
        Tau2AgentLoop.outputs = original


def balancer(addresses: list[str]):
    """verl's own load balancer (sticky, least in flight) over these server addresses."""
    from verl.workers.rollout.router import get_router_handle

    return get_router_handle(servers={a: None for a in addresses})


def check_v0(cfg, server, address: str, failures: list[str]) -> list:
    """verl's v0 worker over token-in episodes of a Qwen3-style model; returns the trajectories."""
    import ray
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker
    from verl.workers.rollout.llm_server import LLMServerClient

    lb = balancer([address])
    worker = AgentLoopWorker(cfg, llm_client=LLMServerClient(cfg, load_balancer_handle=lb))
    seen: list = []
    out = asyncio.run(generate(worker, seen))
    trajectories = [t for _, t in sorted(seen, key=lambda x: x[0])]
    rewards = sorted({t.reward for t in trajectories if t.ok})
    print(
        f"v0 batch: {dict((k, tuple(v.shape)) for k, v in out.batch.items())}; tau2 rewards {rewards}; "
        f"reward extra keys {out.meta_info.get('reward_extra_keys')}"
    )
    check("v0: rewards 0.0 and 1.0 both present", rewards == [0.0, 1.0], f"{rewards}", failures)
    agent = [r for r in server.requests if r["role"] == "agent"]
    routes = {r["endpoint"] for r in agent}
    think = worker.tokenizer.convert_tokens_to_ids("<think>")
    thinks = sum(any(think in c.completion_token_ids for c in t.turns if c is not None) for t in trajectories)
    check(
        "v0: token-in: every policy call on the engine's token route (vLLM /v1/completions), Qwen3 thinking",
        routes == {"completions"} and thinks > 0,
        f"{len(agent)} calls on {routes}, {thinks} episodes with reasoning",
        failures,
    )
    scored = [t for t in trajectories if t.train_action == "train"]
    reasons = [str(x) for x in out.non_tensor_batch["tau2_drop_reason"]]
    check(
        "v0: every scored Qwen3-style episode trains as one sequence (none dropped for drift)",
        len(scored) == len(trajectories)
        and all(t.clean and t.drift.split == 0 for t in scored)
        and reasons == [""] * len(reasons),
        f"{len(scored)} scored, segments {[len(t.segments) for t in scored]}, drop reasons {reasons}",
        failures,
    )
    problems = verify(out, trajectories)
    check(
        "v0: rm_scores carry tau2's rewards, the policy's tokens under response_mask, their logprobs",
        not problems,
        "; ".join(problems[:3]) or f"{len(trajectories)} samples checked",
        failures,
    )
    samples = [int(x) for x in out.non_tensor_batch["tau2_sample"]]
    check(
        "v0: each sample is numbered by its batch position (unique in its group, whichever worker runs it)",
        samples == list(range(len(samples))),
        f"samples {samples}",
        failures,
    )
    status = ray.get(lb.get_status.remote())
    check("v0: every server acquired is released", status["total_inflight"] == 0, f"{status}", failures)
    # a failed episode: the policy endpoint's 500s
    server.set_faults(mode="http_500", count=-1, role="agent")
    failed: list = []
    out_failed = asyncio.run(generate(worker, failed))
    server.set_faults(mode="none")
    reasons = [str(x) for x in out_failed.non_tensor_batch["tau2_drop_reason"]]
    counted = [float(x) for x in out_failed.non_tensor_batch["tau2_dropped"]]
    check(
        "v0: failed episodes are dropped samples, not raised, not scored, counted in the reward extra info",
        all(d == "model_error" for d in reasons)
        and counted == [1.0] * len(reasons)
        and "tau2_dropped" in out_failed.meta_info["reward_extra_keys"]
        and int(out_failed.batch["response_mask"].sum()) == 0
        and float(out_failed.batch["rm_scores"].sum()) == 0.0,
        f"{reasons}, tau2_dropped {counted}",
        failures,
    )
    for how in ("logprob", "mask"):
        broken_seen: list = []
        broken = asyncio.run(generate(worker, broken_seen, corrupt=how))
        got = [t for _, t in sorted(broken_seen, key=lambda x: x[0])]
        check(f"v0: the checks catch a broken {how}", bool(verify(broken, got)), "; ".join(verify(broken, got)[:1]), failures)
    return trajectories


def check_budget(cfg, address: str, response_length: int, failures: list[str]) -> None:
    """verl's v0 worker with a response_length shorter than the episodes: each ends at the budget
    (tau2's max_steps), and the sequence that happened trains with tau2's reward for it."""
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker
    from verl.workers.rollout.llm_server import LLMServerClient

    worker = AgentLoopWorker(cfg, llm_client=LLMServerClient(cfg, load_balancer_handle=balancer([address])))
    seen: list = []
    out = asyncio.run(generate(worker, seen))
    trajectories = [t for _, t in sorted(seen, key=lambda x: x[0])]
    long = [(r, t) for r, t in enumerate(trajectories) if t.termination == "max_steps"]
    lengths = [len(t.segments[0].response_ids) if t.segments else None for t in trajectories]
    problems = verify(out, trajectories, response_length)
    reasons = [str(x) for x in out.non_tensor_batch["tau2_drop_reason"]]
    check(
        f"budget: episodes longer than response_length={response_length} end there (max_steps) and train with tau2's reward",
        bool(long)
        and all(n is not None and n <= response_length for n in lengths)
        and reasons == [""] * len(reasons)
        and not problems,
        f"terminations {[t.termination for t in trajectories]}, rewards {[t.reward for t in trajectories]}, "
        f"response lengths {lengths}; {'; '.join(problems[:2])}",
        failures,
    )


def v1_group(cfg, addresses: list[str]):
    """One GRPO group of 4 sessions through verl's v1 worker, replay buffer and advantage function:
    (the sampled keys, the DataProto with advantages, the stored extra fields)."""
    import numpy as np
    import ray
    import transfer_queue as tq
    from verl.protocol import DataProto
    from verl.trainer.ppo.core_algos import AdvantageEstimator
    from verl.trainer.ppo.v1.agent_loop_tq import AgentLoopWorkerTQ
    from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer
    from verl.trainer.ppo.v1.utils import compute_advantage_for_multi_trajectories
    from verl.utils import tensordict_utils as tu
    from verl.workers.rollout.llm_server import LLMServerClient

    from rollout.trainers.verl import dataset_rows

    uid = str(uuid.uuid4())  # verl's uids are uuids (its keys split on "_")
    [row] = dataset_rows([GROUP_TASK], agent_name="tau2_chat")
    tq.kv_batch_put(keys=[uid], partition_id="train", tags=[{"is_prompt": True, "status": "pending", "global_steps": STEP}])
    prompts = tu.get_tensordict(
        {
            "uid": np.array([uid], dtype=object),
            "index": np.array([0]),
            "raw_prompt": np.array([row["prompt"]] + [None], dtype=object)[:1],
            **{k: np.array([row[k]], dtype=object) for k in ("agent_name", "tau2_domain", "tau2_task_id", "data_source")},
        }
    )
    tu.assign_non_tensor_data(prompts, "global_steps", STEP)
    lb = balancer(addresses)
    worker = AgentLoopWorkerTQ.remote(cfg, LLMServerClient(cfg, load_balancer_handle=lb))
    ray.get(worker.generate_sequences.remote(prompts))
    buffer = ReplayBuffer(
        trainer_mode="sync",
        trainer_config={},
        max_off_policy_threshold=None,
        max_off_policy_strategy="drop",
        sampler_kwargs={},
        poll_interval=0.5,
        train_batch_size=1,
        gen_batch_size=1,
    )
    meta, _ = buffer.sample(global_steps=STEP, partition_id="train", batch_size=1)
    fields = ["uid", "response_mask", "rm_scores", "extra_fields"]
    data = tq.kv_batch_get(keys=meta.keys, partition_id=meta.partition_id, select_fields=fields)
    extra = data.pop("extra_fields").tolist()
    data = DataProto(batch=data.to_padded_tensor())  # as verl's trainer_base._compute_advantage reads it
    data.batch["token_level_scores"] = data.batch["rm_scores"]
    data.batch["token_level_rewards"] = data.batch["token_level_scores"]
    data.non_tensor_batch["uid"] = np.array(data.batch.pop("uid").tolist(), dtype=object)
    data = compute_advantage_for_multi_trajectories(
        data, batch_keys=meta.keys, adv_estimator=AdvantageEstimator.GRPO, num_repeat=4
    )
    return list(meta.keys), list(meta.tags), data, extra, ray.get(lb.get_status.remote())


def check_v1(cfg, servers: list, failures: list[str]) -> None:
    import torch
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage

    from rollout.trainers.verl_samples import episode_seed

    keys, tags, data, extra, status = v1_group(cfg, [s.url.removeprefix("http://").removesuffix("/v1") for s in servers])
    sessions: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        sessions.setdefault(key.rsplit("_", 2)[1], []).append(i)
    rewards = {s: [round(float(data.batch["rm_scores"][i].sum()), 6) for i in rows] for s, rows in sessions.items()}
    mask = data.batch["response_mask"]
    adv = {  # the advantage on each output's trained tokens (nan: an output with none)
        s: [round(float(data.batch["advantages"][i][mask[i].bool()][0]), 4) if mask[i].any() else float("nan") for i in rows]
        for s, rows in sessions.items()
    }
    outputs = {s: len(r) for s, r in sessions.items()}
    print(f"v1 group: {len(sessions)} sessions, outputs per session {outputs}, rewards {rewards}, advantages {adv}")
    agent = [r for s in servers for r in s.requests if r["role"] == "agent"]
    sent = {
        (b.get("temperature"), b.get("max_tokens"), b.get("return_token_ids"), b.get("logprobs"))
        for b in (r["body"] for r in agent)
    }
    check(
        "v1: verl's sampling reaches every policy request (temperature, max_tokens = response_length, capture)",
        sent == {(0.7, RESPONSE_LEN, True, True)},
        f"{len(agent)} requests: {sent}",
        failures,
    )
    seeds: dict[str, set] = {}
    for r in agent:
        seeds.setdefault(r["headers"].get("x-rollout-sample"), set()).add(r["body"].get("seed"))
    expected_seeds = {str(i): {episode_seed(0, STEP, GROUP_TASK["domain"], GROUP_TASK["task_id"], i)} for i in range(4)}
    check(
        "v1: each session has its own seed, derived with the trainer's step",
        seeds == expected_seeds and len({next(iter(v)) for v in seeds.values()}) == 4,
        f"{seeds}",
        failures,
    )
    split = [s for s, rows in sessions.items() if len(rows) > 1]
    check(
        "v1: the failed session has no output; the three scored ones are in the group",
        len(sessions) == 3 and sorted(r[-1] for r in rewards.values()) == [0.0, 1.0, 1.0],
        f"sessions {sorted(sessions)}, last rewards {sorted(r[-1] for r in rewards.values())}",
        failures,
    )
    check(
        "v1: a split episode is one output per segment, tau2's reward on each, min/max_global_steps from its calls",
        bool(split)
        and all(len(set(rewards[s])) == 1 for s in split)
        and all(e.get("tau2_segments") == len(sessions[k.rsplit("_", 2)[1]]) for e, k in zip(extra, keys))
        and all(t["min_global_steps"] == STEP and t["max_global_steps"] == STEP for t in tags),
        f"split sessions {split}, segments {[e.get('tau2_segments') for e in extra]}, "
        f"versions {sorted({(t['min_global_steps'], t['max_global_steps']) for t in tags})}",
        failures,
    )
    kept = torch.tensor([[r[-1]] for r in rewards.values()])
    alone, _ = compute_grpo_outcome_advantage(kept, torch.ones_like(kept), index=["g"] * len(kept))
    with_zero, _ = compute_grpo_outcome_advantage(
        torch.cat([kept, torch.zeros(1, 1)]), torch.ones(len(kept) + 1, 1), index=["g"] * (len(kept) + 1)
    )
    by_reward = {r[-1]: a for r, a in zip(rewards.values(), adv.values())}
    expected = {1.0: KEPT_ADVANTAGES[0], 0.0: KEPT_ADVANTAGES[1]}
    check(
        "v1: GRPO advantages are the group's without the failure (+0.577 / -1.155), on every segment",
        all(abs(x - expected[r]) < 1e-3 for r, xs in by_reward.items() for x in xs)
        and all(abs(float(a) - expected[float(k)]) < 1e-3 for a, k in zip(alone.flatten(), kept.flatten())),
        f"{by_reward}; a 0.0 for the failure would give {[round(float(x), 4) for x in with_zero.flatten()]}",
        failures,
    )
    check("v1: every server acquired is released", status["total_inflight"] == 0, f"{status}", failures)


def main(argv: list[str]) -> int:
    project = str(Path(argv[0]).resolve()) if argv else str(Path(__file__).resolve().parents[2])
    sys.path.insert(0, project)
    from rollout.core.process_env import apply_defaults

    apply_defaults()
    import ray
    import transfer_queue as tq

    from rollout.scripted import ScriptedServer
    from rollout.scripted.endpoints import USER_MODEL
    from rollout.scripted.models import model_dir

    t0 = time.monotonic()
    failures: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix="verl-check-") as tmp,
        ScriptedServer("oracle", model="qwen3", reasoning_parser="qwen3") as server,
        ScriptedServer("oracle", reply_style="text_with_calls") as split_a,
        ScriptedServer("oracle", reply_style="text_with_calls") as split_b,
        ScriptedServer("noop") as closer,
        ScriptedServer("oracle") as failing,
    ):
        server.set_script("airline", "12", [])  # closes at once: tau2 gives 0.0 (rewards vary)
        failing.set_faults(mode="http_500", count=-1, role="agent")
        user = {"base_url": server.url, "model": USER_MODEL, "max_retries": 0}
        token_in = {"max_retries": 0, "tool_call_parser": "hermes", "reasoning_parser": "qwen3"}  # capture: token_in
        chat = {"max_retries": 0, "capture": "token_ids"}
        loops = Path(tmp, "loops.yaml")
        loops.write_text(
            "".join(
                f"- name: {name}\n  _target_: rollout.trainers.verl.Tau2AgentLoop\n  pool: "
                + json.dumps(
                    {
                        "config": {"user_llm": user, "llm": llm},
                        "ray": {"num_workers": 1, "slots_per_worker": 4, "cpus_per_worker": 0.25},
                        "retry": {"max_attempts": 1},
                    }
                )
                + "\n"
                for name, llm in (("tau2_agent", token_in), ("tau2_chat", chat))
            )
        )
        model = str(model_dir("qwen3"))
        ray.init(
            address="local",
            num_cpus=4,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONPATH": project}},  # the worker actor imports this tree
        )
        try:
            address = server.url.removeprefix("http://").removesuffix("/v1")
            trajectories = check_v0(verl_config(model, str(loops), use_v1=False), server, address, failures)
            longest = max(len(t.segments[0].response_ids) for t in trajectories if t.segments)
            budget = verl_config(model, str(loops), use_v1=False, response_length=longest // 2)
            check_budget(budget, address, longest // 2, failures)
            cfg = verl_config(model, str(loops), use_v1=True)
            tq.init(cfg.transfer_queue)
            try:
                check_v1(cfg, [split_a, closer, split_b, failing], failures)
            finally:
                tq.close()
        finally:
            ray.shutdown()
    print(f"{'FAILED: ' + '; '.join(failures) if failures else 'OK'} ({time.monotonic() - t0:.0f}s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
