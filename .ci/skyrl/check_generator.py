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
position, one mask bit flipped): the checks can fail. Step-wise (replies mix text with tool
calls: split sequences) and stitched (SkyRL's default; plain replies: clean sequences); step-wise
again on the same episodes with the failure left out of its group.

Before the pool, crafted groups (`crafted`) through the same SkyRL code, numbers asserted: a GRPO
group with rewards 1 (clean), 0 (split), 1 and a failure gets the advantages of [1, 0, 1]
(+0.577 / -1.155 / +0.577) step-wise with the failure left out, with and without SkyRL's
`merge_stepwise_output`, and the check fails when the failure counts as a 0.0 (then +-0.866); by
default the group is all placeholders with advantage 0, stitched and step-wise; a context
overflow keeps its 0 in its group; finish reasons and versions as the engine reported them;
credit refused with step-wise and GRPO, and with REINFORCE++ (stitched) in the token rewards and
the advantages; `for_skyrl` on SkyRL's default config: stitched, GRPO, the cache salt.
Exit status 1 on any failure.
"""

from __future__ import annotations

import asyncio
import copy
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from crafted import advantages, crafted, grpo  # .ci/skyrl/crafted.py, beside this script

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


def trainer(step_wise: bool, *overrides: str, n_samples: int = N_SAMPLES, prompts: int = 3):
    """A stand-in `self` for RayPPOTrainer's methods: SkyRL's own config (GRPO unless overridden)."""
    from skyrl.train.config import SkyRLTrainConfig

    cfg = SkyRLTrainConfig.from_cli_overrides(
        [
            f"generator.step_wise_trajectories={step_wise}",
            f"generator.n_samples_per_prompt={n_samples}",
            f"trainer.train_batch_size={prompts}",
            f"trainer.policy_mini_batch_size={prompts}",
            "trainer.algorithm.advantage_estimator=grpo",
            "generator.sampling_params.temperature=0.7",
            "generator.sampling_params.max_generate_length=512",
            *overrides,
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
    return tensors(t, len(gen_in["prompts"]), out)


def tensors(t, num_prompts: int, out):
    """SkyRL's validation, post-processing (step-wise merge included), conversion and advantages."""
    from skyrl.train.trainer import RayPPOTrainer
    from skyrl.train.utils.trainer_utils import validate_generator_output

    out = copy.deepcopy(out)
    out.pop("rollout_metrics", None)
    step_wise = t.cfg.generator.step_wise_trajectories
    validate_generator_output(num_prompts, out, step_wise=step_wise)
    uids = [tid.instance_id for tid in out["trajectory_ids"]]
    out, uids = RayPPOTrainer.postprocess_generator_output(t, out, uids)
    batch = RayPPOTrainer.convert_to_training_input(t, out, uids)
    batch["values"] = None
    batch = RayPPOTrainer.compute_advantages_and_returns(t, batch)
    batch.metadata["rows"] = out  # the rows SkyRL trained on (after its merge)
    return batch


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


# ---- crafted groups: what failures, splits and credit become in SkyRL's own advantage code ----
def group_checks(failures: list[str]) -> None:
    from skyrl.train.generators.base import TrajectoryID

    from rollout.trainers.skyrl import Tau2Generator
    from rollout.trainers.skyrl_output import Layout, generator_output
    from rollout.trajectory.credit import Credit

    tid = lambda i, r: TrajectoryID(instance_id=i, repetition_id=r)  # noqa: E731
    kept0, kept1 = [round(a, 4) for a in grpo([1.0, 0.0, 1.0])], [round(a, 4) for a in grpo([1.0, 0.0, 0.0, 1.0])]
    want = {("0", 0): kept0[0], ("0", 1): kept0[1], ("0", 2): kept0[2], **{("1", r): kept1[r] for r in range(4)}}
    for merge in (False, True):
        t = trainer(True, f"generator.merge_stepwise_output={merge}", n_samples=4, prompts=2)
        out = generator_output(crafted(), Layout(step_wise=True, mask_group_on_failure=False), tid)
        batch = tensors(t, 8, out)
        got = advantages(batch)
        rows = {k: len(v) for k, v in got.items()}
        ok = ("0", 3) not in got and all(all(abs(a - want[k]) < 1e-3 for a in got[k]) for k in want)
        check(
            f"step-wise{' merged' if merge else ''}, failure left out: group 0 gets the advantages of its kept rewards "
            f"[1, 0, 1] = {kept0}, group 1 (train_zero counts as 0) {kept1}",
            ok,
            f"SkyRL gave {got} (rows per trajectory {rows})",
            failures,
        )
        if merge:
            check(
                "step-wise merged: SkyRL's merge makes the clean episode one row, the split one two",
                rows[("0", 0)] == 1 and rows[("0", 1)] == 2,
                f"{rows}",
                failures,
            )
    # the check fails when the failure's placeholder 0.0 enters its group (what counting it as a sample does)
    broken = crafted()
    broken[3].train_action = "train_zero"
    got = advantages(tensors(trainer(True, n_samples=4, prompts=2), 8, generator_output(broken, Layout(step_wise=True), tid)))
    check(
        "the check catches a placeholder 0.0 in the group",
        abs(got[("0", 0)][0] - kept0[0]) > 0.1,
        f"with it group 0 gets {got[('0', 0)][0]}, {got[('0', 1)][0]} (not {kept0[0]}, {kept0[1]})",
        failures,
    )
    for step_wise in (True, False):
        mode = "step-wise" if step_wise else "stitched"
        t = trainer(step_wise, n_samples=4, prompts=2)
        out = generator_output(crafted(), Layout(step_wise=step_wise), tid)
        got = advantages(tensors(t, 8, out))
        group0 = [i for i, x in enumerate(out["trajectory_ids"]) if x.instance_id == "0"]
        check(
            f"{mode}, default (mask_group_on_failure): group 0 all placeholders, advantage 0; group 1 {kept1}",
            all(sum(out["loss_masks"][i]) == 0 and out["stop_reasons"][i] == "error" for i in group0)
            and all(a == 0.0 for r in range(4) for a in got[("0", r)])
            and all(abs(got[("1", r)][0] - kept1[r]) < 1e-3 for r in range(4)),
            f"{got}",
            failures,
        )
    out = generator_output(crafted(), Layout(step_wise=True), tid)
    stops = [s for s, x in zip(out["stop_reasons"], out["trajectory_ids"]) if x.instance_id == "1"]
    m = out["rollout_metrics"]
    check(
        "finish reasons one to one (tool_calls is the engine's stop; length, abort kept), versions in the metrics",
        stops == ["length", "stop", "abort", "context_length", "stop", "stop"]
        and (m["tau2/weight_version_min"], m["tau2/served_version_min"], m["tau2/served_version_max"]) == (7.0, 7.0, 8.0),
        f"group 1 stop reasons {stops}; versions { ({k: v for k, v in m.items() if 'version' in k}) }",
        failures,
    )
    # credit: refused where SkyRL would not read it; with REINFORCE++ (stitched) it changes the advantages
    refusals = []
    for layout in ({"step_wise": True, "credit": True}, {"credit": True, "estimator": "grpo"}, {"mask_group_on_failure": False}):
        try:
            Layout(**layout)
            refusals.append(f"{layout}: accepted")
        except ValueError as e:
            refusals.append(f"{layout}: {str(e)[:70]}...")
    check(
        "credit with step-wise or grpo, and stitched without group masking, refused",
        "accepted" not in str(refusals),
        "; ".join(refusals),
        failures,
    )
    t = trainer(False, "trainer.algorithm.advantage_estimator=reinforce++", n_samples=4, prompts=2)
    runs = {}
    for credit in (False, True):
        trajectories = crafted()
        trajectories[7].credit = Credit(actions=[0.5, 0.25])  # ("1", 3): reward 1.0, two calls
        out = generator_output(trajectories, Layout(credit=credit, estimator="reinforce++"), tid)
        batch = tensors(t, 8, out)
        row = next(i for i, x in enumerate(out["trajectory_ids"]) if (x.instance_id, x.repetition_id) == ("1", 3))
        runs[credit] = (out["rewards"][row] if credit else None, batch["advantages"][row][batch["response_mask"][row].bool()])
    changed = bool((runs[True][1] - runs[False][1]).abs().max() > 1e-3)
    check(
        "reinforce++ (stitched): per-turn credit reaches the token rewards and changes the advantages",
        changed and runs[True][0] is not None and abs(sum(runs[True][0]) - 1.75) < 1e-9,
        f"token rewards {runs[True][0]} (reward 1 + shares 0.5, 0.25); advantages credit off "
        f"{[round(x, 3) for x in runs[False][1].tolist()]}, on {[round(x, 3) for x in runs[True][1].tolist()]}",
        failures,
    )
    # cache_salt per engine weight version, read from SkyRL's config as SkyRL's generator reads it
    cfg = trainer(False).cfg
    client = SimpleNamespace(get_endpoint_url=lambda: "http://127.0.0.1:1", model_name="policy", weight_version=3)
    pool = SimpleNamespace(cfg=SimpleNamespace(llm=SimpleNamespace(capture="token_in", engine="vllm")))
    gen = Tau2Generator.for_skyrl(cfg, client, pool)
    gen_in, _ = generator_input(trainer(False))
    salts = {r.policy.extra_body.get("cache_salt") for r in gen.requests(gen_in)}
    check(
        "for_skyrl: SkyRL's defaults (stitched, grpo) and cache_salt <model>@<weight version>",
        salts == {"policy@3"} and gen.layout == Layout(step_wise=False, estimator="grpo"),
        f"salts {salts}, layout {gen.layout}",
        failures,
    )


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
    print("crafted groups through SkyRL's own advantage code:")
    group_checks(failures)
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
                if step_wise:  # the same episodes, the failure left out of its group instead
                    kept = Tau2Generator(pool, policy_url=server.url, step_wise=True, mask_group_on_failure=False)
                    batch = to_tensors(t, gen_in, kept.output(trajectories))
                    got = advantages(batch)
                    first = (failed_group, trajectories[0].tags["repetition_id"])
                    alone = [
                        (k, a, x.reward)
                        for x in trajectories[1:]
                        if x.group_id == failed_group
                        for k in [(x.group_id, x.tags["repetition_id"])]
                        for a in got[k]
                    ]
                    check(
                        f"{mode}, mask_group_on_failure=False: the failed episode has no row; the sample left alone "
                        "in its group gets SkyRL's single-sample advantage (its reward)",
                        first not in got and bool(alone) and all(abs(a - r) < 1e-4 for _, a, r in alone),
                        f"{alone}",
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
