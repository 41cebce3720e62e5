"""What a trainer asks the rollout pool for: one episode per `RolloutRequest`.

A request names its episode (domain, task id, sample), its GRPO group (default: the samples
of one task, `"<domain>/<task_id>"`), the trainer's weight version and free-form tags, and,
optionally, the policy endpoint to use for it (`Endpoint`): trainers move endpoints and
weights between steps, so each request may carry its own. An endpoint names its API key by
the environment variable that holds it (`api_key_env`), read by the worker that makes the
requests: no key travels with a request. The user simulator's endpoint is the pool's (its
config's `user_llm`), apart from the policy's, and its calls are never recorded as training
data.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Any, Optional

from rollout.agent.episode import EpisodeSpec, ValidEpisode
from rollout.agent.runner import PolicyEndpoint
from rollout.core.config.keys import is_variable_name, key_from_variable
from rollout.core.failures import InvalidInput
from rollout.pool.checks import endpoint_problem


@dataclass(frozen=True)
class Endpoint:
    """A policy endpoint for a request (see module doc). `extra_body` goes with every request of
    the episode, last: per-request sampling (temperature, top_p, max_tokens, stop) and server
    options, never the fields the episode owns (rollout/pool/checks.py); `headers` likewise
    (routing keys; never shown in a repr or an error). Raises InvalidInput naming a bad field."""

    base_url: str
    api_key_env: Optional[str] = None
    model: Optional[str] = None
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    extra_body: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.api_key_env is not None and (not isinstance(self.api_key_env, str) or not is_variable_name(self.api_key_env)):
            raise InvalidInput(
                "Endpoint.api_key_env must be the NAME of an environment variable (letters, digits, "
                "underscores), not a key itself"
            )
        problem = endpoint_problem(self)
        if problem:
            raise InvalidInput(problem)

    def with_key(self) -> PolicyEndpoint:
        """The endpoint an episode uses: its key read from this process's environment (the
        worker's). Raises InvalidInput."""
        key = None
        if self.api_key_env:
            key = key_from_variable(
                self.api_key_env, field="Endpoint.api_key_env", where="the worker's process (set it on every node)"
            )
        return PolicyEndpoint(
            base_url=self.base_url, api_key=key, model=self.model, headers=dict(self.headers), extra_body=dict(self.extra_body)
        )


@dataclass(frozen=True)
class RolloutRequest:
    """One episode for the pool (see module doc). `seed` None: derived from the request's identity
    and weight version (`derive_seed`), so a request always samples with the same seed and each
    trainer step samples afresh."""

    domain: str
    task_id: str
    sample: int = 0
    group_id: Optional[str] = None
    seed: Optional[int] = None
    solo: Optional[bool] = None
    weight_version: Optional[int] = None
    policy: Optional[Endpoint] = None
    tags: dict[str, Any] = field(default_factory=dict)

    @property
    def group(self) -> str:
        return self.group_id or f"{self.domain}/{self.task_id}"

    def spec(self, base_seed: int = 0) -> EpisodeSpec:
        """The episode this request asks for, its seed derived if not given (see class doc)."""
        seed = self.seed
        if seed is None:
            seed = derive_seed(base_seed, self.domain, self.task_id, self.sample, self.weight_version)
        return EpisodeSpec(
            self.domain, str(self.task_id), self.sample, seed=seed, solo=self.solo, weight_version=self.weight_version
        )


@dataclass(frozen=True)
class ValidRequest:
    """A request checked against its domain and a pool's config (`RolloutPool.check`), with the
    episode it runs (checked once, in the driver): what the pool queues and sends to a worker."""

    request: RolloutRequest
    episode: ValidEpisode

    @property
    def group(self) -> str:
        return self.request.group

    def resampled(self, sample: int, base_seed: int) -> ValidRequest:
        """Another sample of the same episode (a group's extra): sample number `sample`, its seed
        derived as a request without one gets it. Domain, task and solo mode are the checked ones."""
        request = dataclasses.replace(self.request, sample=sample, seed=None)
        seed = request.spec(base_seed).seed
        return ValidRequest(request, dataclasses.replace(self.episode, sample=sample, seed=seed))


def derive_seed(base_seed: int, domain: str, task_id: str, sample: int, version: Optional[int] = None) -> int:
    """A per-episode seed, stable across processes and runs (sha256, not Python's hash). With the
    trainer's weight `version` (its step), each step samples afresh and a rerun of the same step
    samples the same; without it, the identity alone (sweeps)."""
    key = f"{base_seed}:{domain}:{task_id}:{sample}" + (f":v{int(version)}" if version is not None else "")
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF
