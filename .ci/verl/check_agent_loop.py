"""TAU2 episodes through verl 0.9.1's own agent-loop code, on a CPU, against the scripted server.

    SIDE_PY .ci/verl/check_agent_loop.py PROJECT_PATH

verl's own code (nothing of it patched): its trainer config (`hydra.compose` of `ppo_trainer`),
`AgentLoopWorker` (the real constructor: RolloutConfig, HFModelConfig, tokenizer, the agent loops
of `agent_loop_config_path`), `AgentLoopWorker.generate_sequences(DataProto)`: sampling
parameters, `hydra.utils.instantiate` of our `Tau2AgentLoop`, `run`, `_agent_loop_postprocess`
(padding, masks, position ids, logprobs), `_postprocess` (the DataProto batch, `rm_scores`),
and `LLMServerClient` around its load balancer. Not verl's: the inference servers (the scripted
server in vLLM's token mode, with a real tokenizer and Qwen2.5's template, stands in for verl's
vLLM servers; `ScriptedLoadBalancer`, a small Ray actor standing in for verl's
GlobalLoadBalancer, lists its address), and the model directory (the scripted server's tokenizer
with a tiny model config, no weights: verl reads only its tokenizer and config here).

Checks, on the DataProto verl built, against the trajectories the pool returned:
  * `rm_scores` holds tau2's reward on each sample's last response token (0.0 and 1.0 present);
  * `response_mask` covers exactly the policy's tokens: under it, `responses` holds each call's
    completion ids in order; `rollout_log_probs` under it are the captured logprobs, one to one;
  * verl's sampling (temperature, and `max_tokens` = response_length) reaches every policy request;
  * a failed episode is a dropped sample (mask all zero), never raised and never scored;
Then the checks must FAIL on a deliberately broken loop output (a logprob shifted by one, one
mask bit flipped). Exit status 1 on any failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROWS = [{"domain": "airline", "task_id": "12"}, {"domain": "mock", "task_id": "create_task_1"}]
N_SAMPLES = 2
PROMPT_LEN, RESPONSE_LEN = 8192, 8192


def check(name: str, ok: bool, detail: str, failures: list[str]) -> None:
    print(f"  [{'ok' if ok else 'FAIL'}] {name}: {detail}")
    if not ok:
        failures.append(name)


def model_dir(path: str) -> str:
    """The scripted server's tokenizer as a Hugging Face model directory (a tiny config, no weights)."""
    from transformers import PreTrainedTokenizerFast

    from rollout.scripted import chat_tokens

    tok_dir = Path(chat_tokens.__file__).parent / "tokenizer"
    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(tok_dir / "tau2-bpe.json"),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=(tok_dir / "qwen25_chat_template.jinja").read_text(),
    )
    tok.save_pretrained(path)
    config = {
        "model_type": "qwen2",
        "architectures": ["Qwen2ForCausalLM"],
        "vocab_size": len(tok),
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "max_position_embeddings": 32768,
        "eos_token_id": tok.eos_token_id,
        "torch_dtype": "float32",
    }
    Path(path, "config.json").write_text(json.dumps(config))
    return path


def verl_config(model: str, loops_yaml: str):
    import verl
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=os.path.join(os.path.dirname(verl.__file__), "trainer", "config"), version_base=None):
        return compose(
            config_name="ppo_trainer",
            overrides=[
                f"actor_rollout_ref.model.path={model}",
                "actor_rollout_ref.rollout.name=vllm",
                f"actor_rollout_ref.rollout.prompt_length={PROMPT_LEN}",
                f"actor_rollout_ref.rollout.response_length={RESPONSE_LEN}",
                "actor_rollout_ref.rollout.calculate_log_probs=true",
                "actor_rollout_ref.rollout.temperature=0.7",
                f"actor_rollout_ref.rollout.agent.agent_loop_config_path={loops_yaml}",
            ],
        )


def batch():
    import numpy as np
    import torch
    from verl.protocol import DataProto

    from rollout.trainers.verl import dataset_rows

    rows = [r for r in dataset_rows(ROWS) for _ in range(N_SAMPLES)]  # n samples, interleaved as verl repeats them
    n = len(rows)
    columns = {
        k: np.array([r[k] for r in rows], dtype=object) for k in ("agent_name", "tau2_domain", "tau2_task_id", "data_source")
    }
    columns["raw_prompt"] = np.array([r["prompt"] for r in rows] + [None], dtype=object)[:n]
    columns["uid"] = np.array([f"uid-{i // N_SAMPLES}" for i in range(n)], dtype=object)
    columns["index"] = np.array([i // N_SAMPLES for i in range(n)], dtype=object)
    columns["global_steps"] = np.array([7] * n, dtype=object)
    columns["check_row"] = np.array(list(range(n)), dtype=object)  # which row a loop ran (for the spy)
    return DataProto.from_single_dict(
        {"dummy_tensor": torch.zeros(n, 1, dtype=torch.uint8), **columns}, meta_info={"global_steps": 7, "validate": False}
    )


def verify(out, trajectories) -> list[str]:
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
        if under != [i for c in calls for i in c.completion_token_ids][:RESPONSE_LEN]:
            problems.append(f"row {r}: the tokens under response_mask are not the policy's")
        expected = [x for c in calls for x in c.completion_logprobs][:RESPONSE_LEN]
        if len(logprobs) != len(expected) or any(abs(a - b) > 1e-5 for a, b in zip(logprobs, expected)):
            problems.append(f"row {r}: rollout_log_probs under the mask are not the captured ones")
        if abs(float(score[last]) - t.reward) > 1e-6 or abs(float(score.sum()) - t.reward) > 1e-6:
            problems.append(f"row {r}: rm_scores {float(score.sum())} at {last}, tau2 gave {t.reward}")
    return problems


async def generate(worker, seen: list, corrupt: str = ""):
    """verl's generate_sequences, with a spy keeping each loop's trajectory (and, to show the checks
    can fail, corrupting what the loop hands back)."""
    from rollout.trainers.verl import Tau2AgentLoop

    original = Tau2AgentLoop.output
    left = {"corruptions": 1 if corrupt else 0}

    def spy(self, t, row):
        out = original(self, t, row)
        seen.append((int(row["check_row"]), t))
        if left["corruptions"] and sum(out.response_mask) > 2:  # the first sample with a sequence to break
            left["corruptions"] -= 1
            if corrupt == "logprob":
                out.response_logprobs = out.response_logprobs[1:] + out.response_logprobs[:1]
            else:
                out.response_mask = out.response_mask[:-1] + [0]
        return out

    Tau2AgentLoop.output = spy
    try:
        return await worker.generate_sequences(batch())
    finally:
        Tau2AgentLoop.output = original


def main(argv: list[str]) -> int:
    project = str(Path(argv[0]).resolve()) if argv else str(Path(__file__).resolve().parents[2])
    sys.path.insert(0, project)
    from rollout.core.process_env import apply_defaults

    apply_defaults()
    import ray
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker
    from verl.workers.rollout.llm_server import LLMServerClient

    from rollout.scripted import ScriptedServer
    from rollout.scripted.endpoints import USER_MODEL

    t0 = time.monotonic()
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="verl-check-") as tmp, ScriptedServer("oracle") as server:
        server.set_script("airline", "12", [])  # closes at once: tau2 gives 0.0 (rewards vary)
        loops = Path(tmp, "loops.yaml")
        pool = {
            "config": {"user_llm": {"base_url": server.url, "model": USER_MODEL, "max_retries": 0}, "llm": {"max_retries": 0}},
            "ray": {"num_workers": 1, "slots_per_worker": 4},
            "retry": {"max_attempts": 1},
        }
        loops.write_text(f"- name: tau2_agent\n  _target_: rollout.trainers.verl.Tau2AgentLoop\n  pool: {json.dumps(pool)}\n")
        cfg = verl_config(model_dir(f"{tmp}/model"), str(loops))
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            address = server.url.removeprefix("http://").removesuffix("/v1")

            @ray.remote
            class ScriptedLoadBalancer:
                """Stands in for verl's GlobalLoadBalancer: lists the scripted server as the one vLLM server."""

                def get_all_servers(self):
                    return [address]

            worker = AgentLoopWorker(cfg, llm_client=LLMServerClient(cfg, load_balancer_handle=ScriptedLoadBalancer.remote()))
            seen: list = []
            out = asyncio.run(generate(worker, seen))
            trajectories = [t for _, t in sorted(seen, key=lambda x: x[0])]
            rewards = sorted({t.reward for t in trajectories if t.ok})
            print(
                f"verl batch: {dict((k, tuple(v.shape)) for k, v in out.batch.items())}; tau2 rewards {rewards}; "
                f"extra {sorted(k for k in out.non_tensor_batch if k.startswith('tau2_'))}"
            )
            check("rewards 0.0 and 1.0 both present", rewards == [0.0, 1.0], f"{rewards}", failures)
            policy = [r["body"] for r in server.requests if r["role"] == "agent"]
            sent = {(b.get("temperature"), b.get("max_tokens"), b.get("return_token_ids"), b.get("logprobs")) for b in policy}
            check(
                "verl's sampling reaches every policy request (temperature, max_tokens = response_length, capture)",
                sent == {(0.7, RESPONSE_LEN, True, True)},
                f"{len(policy)} requests: {sent}",
                failures,
            )
            problems = verify(out, trajectories)
            check(
                "rm_scores carry tau2's rewards, the policy's tokens under response_mask, their logprobs",
                not problems,
                "; ".join(problems[:3]) or f"{len(trajectories)} samples checked",
                failures,
            )
            # a failed episode: the policy endpoint's 500s (the scripted server, for two requests)
            server.set_faults(mode="http_500", count=-1, role="agent")
            seen.clear()
            out_failed = asyncio.run(generate(worker, seen))
            server.set_faults(mode="none")
            dropped = [str(x) for x in out_failed.non_tensor_batch["tau2_dropped"]]
            check(
                "failed episodes are dropped samples, not raised, not scored",
                all(d == "model_error" for d in dropped)
                and int(out_failed.batch["response_mask"].sum()) == 0
                and float(out_failed.batch["rm_scores"].sum()) == 0.0,
                f"{dropped}",
                failures,
            )
            for how in ("logprob", "mask"):
                seen.clear()
                broken = asyncio.run(generate(worker, seen, corrupt=how))
                trajectories = [t for _, t in sorted(seen, key=lambda x: x[0])]
                check(
                    f"the checks catch a broken {how}",
                    bool(verify(broken, trajectories)),
                    "; ".join(verify(broken, trajectories)[:1]),
                    failures,
                )
        finally:
            ray.shutdown()
    print(f"{'FAILED: ' + '; '.join(failures) if failures else 'OK'} ({time.monotonic() - t0:.0f}s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
