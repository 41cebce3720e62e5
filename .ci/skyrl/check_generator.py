"""TAU2 episodes through SkyRL 0.3.0's own trainer code, on a CPU, against the scripted server.

    SIDE_PY .ci/skyrl/check_generator.py PROJECT_PATH

SkyRL's own code (nothing of it patched): `prepare_generator_input` and
`get_sampling_params_for_backend` build the GeneratorInput as the trainer does;
`validate_generator_output`, `RayPPOTrainer.postprocess_generator_output`,
`RayPPOTrainer.convert_to_training_input` and `RayPPOTrainer.compute_advantages_and_returns`
(unbound, on a stand-in `self` holding SkyRL's config, the pad id, the metrics dict and a dp size
of 1) turn our `Tau2Generator.generate` output into training tensors. Not SkyRL's: the model (the
scripted server in vLLM's token mode, with a real tokenizer and Qwen2.5's template, stands in
for SkyRL's vLLM router), and `fwd_logprobs_values_reward` is not run (it needs the model).

Episodes run on a real rollout pool (local Ray, one worker, one slot: the order is fixed, so
the user simulator's first answer can be made to fail and the first group must be masked).
Checks, on the tensors SkyRL built, against the tokens the pool captured:
  * every trajectory's rewards in the tensors sum to tau2's reward (0.0 and 1.0 both present);
  * loss_mask covers exactly the policy's tokens: under it, `sequences` holds each call's
    completion ids, in order;
  * rollout_logprobs under the mask are the captured logprobs, one to one;
  * the failed episode's group is masked (zero loss mask, stop reason "error"), never a 0.0.
Then the same checks must FAIL on a deliberately broken output (a logprob shifted by one
position, one mask bit flipped): the checks can fail. Step-wise (SkyRL's default; replies mix
text with tool calls) and stitched (plain replies: clean sequences).
Exit status 1 on any failure.
"""

from __future__ import annotations

import asyncio
import copy
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROWS = [
    {"domain": "airline", "task_id": "12"},
    {"domain": "mock", "task_id": "create_task_1"},
    {"domain": "retail", "task_id": "2"},
]
N_SAMPLES = 2


def check(name: str, ok: bool, detail: str, failures: list[str]) -> None:
    print(f"  [{'ok' if ok else 'FAIL'}] {name}: {detail}")
    if not ok:
        failures.append(name)


def trainer(step_wise: bool):
    from skyrl.train.config import SkyRLTrainConfig

    cfg = SkyRLTrainConfig.from_cli_overrides(
        [
            f"generator.step_wise_trajectories={step_wise}",
            f"generator.n_samples_per_prompt={N_SAMPLES}",
            "trainer.train_batch_size=3",
            "trainer.policy_mini_batch_size=3",
            "trainer.algorithm.advantage_estimator=grpo",
            "generator.sampling_params.temperature=0.7",
            "generator.sampling_params.max_generate_length=512",
        ]
    )
    return SimpleNamespace(
        cfg=cfg, tokenizer=SimpleNamespace(pad_token_id=0), all_metrics={}, dispatch=SimpleNamespace(get_lcm_dp_size=lambda: 1)
    )


def generator_input(t):
    from skyrl.backends.skyrl_train.inference_servers.engine_utils import get_sampling_params_for_backend
    from skyrl.train.generators.utils import prepare_generator_input

    from rollout.trainers.skyrl import dataset_rows

    prompts = [
        {
            "prompt": r["prompt"],
            "env_class": r["env_class"],
            "env_extras": {k: v for k, v in r.items() if k not in ("prompt", "env_class")},
            "uid": str(i),
        }
        for i, r in enumerate(dataset_rows(ROWS))
    ]
    sampling = get_sampling_params_for_backend("vllm", t.cfg.generator.sampling_params)
    return prepare_generator_input(prompts, N_SAMPLES, sampling, t.cfg.environment.env_class, "train", global_step=7)


def to_tensors(t, gen_in, out):
    """What RayPPOTrainer.train does between generate() and the model forward pass."""
    from skyrl.train.trainer import RayPPOTrainer
    from skyrl.train.utils.trainer_utils import validate_generator_output

    out = copy.deepcopy(out)
    out.pop("rollout_metrics", None)
    step_wise = t.cfg.generator.step_wise_trajectories
    validate_generator_output(len(gen_in["prompts"]), out, step_wise=step_wise)
    uids = [tid.instance_id for tid in out["trajectory_ids"]]
    out, uids = RayPPOTrainer.postprocess_generator_output(t, out, uids)
    batch = RayPPOTrainer.convert_to_training_input(t, out, uids)
    batch["values"] = None
    return RayPPOTrainer.compute_advantages_and_returns(t, batch)


def expected_rows(trajectories, step_wise: bool, masked_groups: set[str]):
    """Per output row, from the pool's captured tokens alone: (policy ids, logprobs, reward, masked)."""
    rows = []
    for traj in trajectories:
        if traj.group_id in masked_groups:
            rows.append(([], [], 0.0, True))
            continue
        calls = [c for c in traj.turns if c is not None and c.message_index is not None]
        if step_wise:
            for n, c in enumerate(calls):
                rows.append((c.completion_token_ids, c.completion_logprobs, traj.reward if n == len(calls) - 1 else 0.0, False))
        else:
            rows.append(
                (
                    [i for c in calls for i in c.completion_token_ids],
                    [x for c in calls for x in c.completion_logprobs],
                    traj.reward,
                    False,
                )
            )
    return rows


def verify(batch, rows) -> list[str]:
    """Problems of the tensors against the expected rows (empty: none)."""
    problems = []
    for r, (ids, logprobs, reward, masked) in enumerate(rows):
        mask = batch["loss_mask"][r].bool()
        under = batch["sequences"][r, -mask.shape[0] :][mask].tolist()
        got_lp = batch["rollout_logprobs"][r][mask].tolist()
        got_reward = float(batch["rewards"][r].sum())
        if masked:
            if mask.any():
                problems.append(f"row {r}: a masked sample has loss_mask bits set")
            continue
        if under != ids:
            problems.append(f"row {r}: the tokens under loss_mask are not the policy's ({len(under)} vs {len(ids)})")
        if len(got_lp) != len(logprobs) or any(abs(a - b) > 1e-5 for a, b in zip(got_lp, logprobs)):
            problems.append(f"row {r}: rollout_logprobs under the mask are not the captured ones")
        if abs(got_reward - reward) > 1e-6:
            problems.append(f"row {r}: reward {got_reward} in the tensors, tau2 gave {reward}")
    if len(rows) > batch["sequences"].shape[0]:
        problems.append(f"{len(rows)} rows expected, {batch['sequences'].shape[0]} in the batch")
    return problems


def corrupted(out, how: str):
    out = copy.deepcopy(out)
    r = next(i for i, m in enumerate(out["loss_masks"]) if sum(m) > 2)
    if how == "logprob":
        out["rollout_logprobs"][r] = out["rollout_logprobs"][r][1:] + [out["rollout_logprobs"][r][0]]
    else:
        out["loss_masks"][r][-1] = 0
    return out


def main(argv: list[str]) -> int:
    project = str(Path(argv[0]).resolve()) if argv else str(Path(__file__).resolve().parents[2])
    sys.path.insert(0, project)
    from rollout.core.process_env import apply_defaults

    apply_defaults()
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    from rollout.pool import RolloutPool
    from rollout.scripted import ScriptedServer
    from rollout.scripted.endpoints import AGENT_MODEL, USER_MODEL
    from rollout.trainers.skyrl import Tau2Generator

    t0 = time.monotonic()
    failures: list[str] = []
    with ScriptedServer("oracle", record=False, reply_style="mixed") as server:
        server.set_script("airline", "12", [])  # the agent closes at once: tau2 gives 0.0 (rewards vary)
        config = {
            "llm": {"capture": "token_ids", "max_retries": 0},
            "user_llm": {"base_url": server.url, "model": USER_MODEL, "max_retries": 0},
        }
        with RolloutPool(config, ray={"num_workers": 1, "slots_per_worker": 1}, retry={"max_attempts": 1}) as pool:
            for step_wise in (True, False):
                mode = "step-wise" if step_wise else "stitched"
                t = trainer(step_wise)
                gen_in, _ = generator_input(t)
                # step-wise: replies mix text with tool calls (vLLM + Qwen2.5 then split the sequence: steps
                # do not mind); stitched: plain replies, so that episodes are clean sequences to train on
                server.set_reply_style("mixed" if step_wise else "plain")
                generator = Tau2Generator(pool, policy_url=server.url, model=AGENT_MODEL, step_wise=step_wise)
                server.set_faults(mode="http_500", count=1, role="user")  # the first episode's user simulator fails
                out = asyncio.run(generator.generate(gen_in))
                trajectories = generator.last_trajectories
                masked = {x.group_id for x in trajectories if x.train_action != "train"}
                if not step_wise:
                    masked |= {x.group_id for x in trajectories if x.ok and not x.clean}
                rows = expected_rows(trajectories, step_wise, masked)
                batch = to_tensors(t, gen_in, out)
                rewards = sorted({x.reward for x in trajectories if x.ok})
                print(
                    f"{mode}: {len(trajectories)} episodes, {len(out['response_ids'])} rows, tau2 rewards {rewards}, "
                    f"failed {[x.failure.failure_class.value for x in trajectories if not x.ok]}, "
                    f"metrics {out['rollout_metrics']}"
                )
                check(
                    f"{mode}: SkyRL validated and converted it", batch is not None, f"{tuple(batch['sequences'].shape)}", failures
                )
                check(f"{mode}: rewards 0.0 and 1.0 both present", rewards == [0.0, 1.0], f"{rewards}", failures)
                trained = [i for i, m in enumerate(out["loss_masks"]) if sum(m)]
                check(f"{mode}: rows to train on", len(trained) >= 2, f"{len(trained)} of {len(out['loss_masks'])}", failures)
                problems = verify(batch, rows)
                check(
                    f"{mode}: tensors carry tau2's rewards, the policy's tokens under the mask, their logprobs",
                    not problems,
                    "; ".join(problems[:3]) or f"{len(rows)} rows checked",
                    failures,
                )
                failed_group = trajectories[0].group_id
                placeholder = [i for i, tid in enumerate(out["trajectory_ids"]) if tid.instance_id == failed_group]
                check(
                    f"{mode}: the failed episode's group is masked, not scored 0.0",
                    not trajectories[0].ok
                    and all(sum(out["loss_masks"][i]) == 0 and out["stop_reasons"][i] == "error" for i in placeholder),
                    f"{len(placeholder)} rows of group {failed_group} masked",
                    failures,
                )
                for how in ("logprob", "mask"):
                    broken = to_tensors(t, gen_in, corrupted(out, how))
                    check(
                        f"{mode}: the checks catch a broken {how}",
                        bool(verify(broken, rows)),
                        "; ".join(verify(broken, rows)[:1]),
                        failures,
                    )
    print(f"{'FAILED: ' + '; '.join(failures) if failures else 'OK'} ({time.monotonic() - t0:.0f}s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
