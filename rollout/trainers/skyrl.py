"""TAU2 in SkyRL: a `GeneratorInterface` whose `generate` runs the batch on the rollout pool.

SkyRL (PyPI `skyrl` 0.3.0, `skyrl/train/generators/base.py`) calls `generate(GeneratorInput)` once
per step with every row of the batch: `env_extras` (the dataset's extra columns: `domain` and
`task_id` here, see `dataset_rows`), `trajectory_ids` (`instance_id` = the dataset row, the
group; `repetition_id` = the sample), `sampling_params` (vLLM's native names) and
`batch_metadata.global_step`. Each row becomes a `RolloutRequest` on the pool, against the
trainer's inference router (`inference_engine_client.get_endpoint_url()`; an `X-Session-ID` per
episode keeps its calls on one server), with the step as the weight version and the trainer's
sampling parameters (temperature, top_p, top_k, min_p, max_tokens, stop) on every policy
request; the pool's config must have `llm.capture` on: `token_in` (the router's
`/v1/completions` with token-id prompts, `llm.tokenizer` = the policy's model directory) makes
every episode one sequence whatever the chat template does to history.

What comes back is what SkyRL trains on, from the tokens the engine produced (never
re-rendered), laid out by `skyrl_output` (its module doc: rows, rewards, failures, credit, finish
reasons): step-wise (SkyRL's `generator.step_wise_trajectories`; SkyRL's default is off) one
row per policy call, stitched one row per episode. `for_skyrl` reads the mode, the advantage
estimator and `generator.use_cache_salt` from SkyRL's config the way SkyRL has them, and
refuses a combination SkyRL would not train as meant before any episode runs. With
`use_cache_salt` each batch's requests carry vLLM's `cache_salt` = `<model>@<engine weight
version>`, as SkyRL's own generator sends it (`skyrl_gym_generator.py:265-281`). SkyRL's
GeneratorOutput has no field for a row's weight version: the versions each call was requested
with and, where the engine reports one, served by are in the rollout metrics and in
`last_trajectories`.

Python 3.11: SkyRL 0.3.0's `skyrl.tinker.types` builds pydantic models over `typing.TypedDict`,
which pydantic accepts only on Python >= 3.12. On 3.11, `typing.TypedDict` is bound to
`typing_extensions.TypedDict` while that one module is imported, then restored (`_skyrl`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Optional

from rollout.pool import Endpoint, RolloutPool, RolloutRequest
from rollout.trainers.skyrl_output import Layout, generator_output
from rollout.trajectory import Trajectory


def _skyrl():
    """skyrl's generator types (see module doc for the Python 3.11 shim)."""
    if sys.version_info < (3, 12) and "skyrl.tinker.types" not in sys.modules:
        import typing

        import typing_extensions

        original = typing.TypedDict
        typing.TypedDict = typing_extensions.TypedDict
        try:
            import skyrl.tinker.types  # noqa: F401
        finally:
            typing.TypedDict = original
    from skyrl.train.generators import base

    return base


_base = _skyrl()
GeneratorInterface, TrajectoryID = _base.GeneratorInterface, _base.TrajectoryID

SAMPLING_KEYS = ("temperature", "top_p", "top_k", "min_p", "max_tokens", "stop", "min_tokens")


def dataset_rows(rows: list[dict]) -> list[dict]:
    """SkyRL dataset rows for tau2 data rows ({"domain", "task_id"}): the prompt SkyRL requires
    (a placeholder: the pool builds tau2's own), the env class, and domain and task id as the
    extra columns SkyRL hands back as `env_extras`."""
    return [
        {
            "prompt": [{"role": "user", "content": f"{r['domain']}/{r['task_id']}"}],
            "env_class": "tau2",
            "domain": r["domain"],
            "task_id": str(r["task_id"]),
        }
        for r in rows
    ]


def chat_sampling(params: Optional[dict]) -> dict[str, Any]:
    """SkyRL's sampling params (vLLM's native names) as chat-completions fields vLLM accepts."""
    out = {k: params[k] for k in SAMPLING_KEYS if params and params.get(k) is not None}
    if out.get("top_k") == -1:
        out.pop("top_k")  # vLLM's "off"
    return out


class Tau2Generator(GeneratorInterface):
    """See the module doc. `policy_url`: the trainer's OpenAI-compatible endpoint (`.../v1`);
    `model`: the served model name (None: the server's first); `step_wise`, `credit`,
    `mask_group_on_failure`, `estimator`: the `Layout` (skyrl_output); `cache_salt`: called once
    per batch, the salt its requests carry (None: none)."""

    def __init__(
        self,
        pool: RolloutPool,
        *,
        policy_url: str,
        model: Optional[str] = None,
        step_wise: bool = False,
        credit: bool = False,
        mask_group_on_failure: bool = True,
        estimator: str = "grpo",
        cache_salt: Optional[Callable[[], Optional[str]]] = None,
    ):
        if not pool.cfg.llm.capture:
            raise ValueError(
                "the pool's config must have llm.capture on (token_in with llm.tokenizer = the policy's model directory, "
                "or token_ids for append-only templates): SkyRL trains on the tokens"
            )
        self.layout = Layout(step_wise=step_wise, credit=credit, mask_group_on_failure=mask_group_on_failure, estimator=estimator)
        self.pool = pool
        self.policy_url = policy_url
        self.model = model
        self.cache_salt = cache_salt
        self.last_trajectories: list[Trajectory] = []

    @classmethod
    def for_skyrl(cls, cfg, inference_engine_client, pool: RolloutPool, **kwargs) -> Tau2Generator:
        """The generator of a SkyRL experiment (`BasePPOExp.get_generator(cfg, ...)`: its whole
        config): its vLLM router's URL; `generator.step_wise_trajectories` (SkyRL's default False),
        `trainer.algorithm.advantage_estimator` and `generator.use_cache_salt` as SkyRL reads them.
        `kwargs`: the generator's own options (credit, mask_group_on_failure, model)."""
        generator, algorithm = cfg.generator, cfg.trainer.algorithm
        salt = None
        token_engine = pool.cfg.llm.engine if pool.cfg.llm.capture == "token_in" else "vllm"
        if generator.use_cache_salt and token_engine == "vllm":
            model = kwargs.get("model") or getattr(inference_engine_client, "model_name", None)

            def salt() -> Optional[str]:
                version = getattr(inference_engine_client, "weight_version", None)
                return None if version is None else (f"{model}@" if model else "") + str(version)

        return cls(
            pool,
            policy_url=inference_engine_client.get_endpoint_url().rstrip("/") + "/v1",
            step_wise=bool(generator.step_wise_trajectories),
            estimator=str(algorithm.advantage_estimator),
            cache_salt=salt,
            **kwargs,
        )

    @property
    def step_wise(self) -> bool:
        return self.layout.step_wise

    def requests(self, input_batch) -> list[RolloutRequest]:
        extras, ids = input_batch["env_extras"], input_batch["trajectory_ids"]
        meta = input_batch.get("batch_metadata")
        version = getattr(meta, "global_step", None)
        sampling = chat_sampling(input_batch.get("sampling_params"))
        salt = self.cache_salt() if self.cache_salt else None
        if salt is not None:
            sampling["cache_salt"] = salt
        return [
            RolloutRequest(
                extra["domain"],
                str(extra["task_id"]),
                sample=tid.repetition_id,
                group_id=tid.instance_id,
                weight_version=version,
                policy=Endpoint(  # the router keeps an X-Session-ID on one server (its prefix cache)
                    self.policy_url,
                    model=self.model,
                    headers={"X-Session-ID": f"{tid.instance_id}_{tid.repetition_id}"},
                    extra_body=sampling,
                ),
                tags={"instance_id": tid.instance_id, "repetition_id": tid.repetition_id},
            )
            for extra, tid in zip(extras, ids)
        ]

    async def generate(self, input_batch):
        """SkyRL's GeneratorOutput for the batch (see module doc); the trajectories stay in
        `last_trajectories` (for logging, and for checks against the tokens captured)."""
        trajectories = await self.pool.arun(self.requests(input_batch))
        self.last_trajectories = trajectories
        return self.output(trajectories)

    def output(self, trajectories: list[Trajectory]) -> dict[str, Any]:
        """SkyRL's GeneratorOutput of the pool's trajectories (in the batch's order)."""
        return generator_output(trajectories, self.layout, lambda i, r: TrajectoryID(instance_id=i, repetition_id=r))
