"""The episode list of a sweep: (domain x task x sample), stable keys and derived seeds.

Everything is validated here, before Ray starts: domains, split, task ids, solo
feasibility, sizes. Errors are `InvalidInput` naming what is valid.
"""

from __future__ import annotations

import hashlib

from rollout.env.domains import check_domain, load_domain
from rollout.episode import EpisodeSpec, resolve
from rollout.failures import InvalidInput
from rollout.sweep.config import SweepConfig

Key = tuple[str, str, int]  # (domain, task_id, sample)


def key_of(spec: EpisodeSpec) -> Key:
    return (spec.domain, str(spec.task_id), spec.sample)


def derive_seed(base_seed: int, domain: str, task_id: str, sample: int) -> int:
    """A per-episode seed, stable across processes and runs (sha256, not Python's hash)."""
    digest = hashlib.sha256(f"{base_seed}:{domain}:{task_id}:{sample}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def plan_episodes(cfg: SweepConfig) -> list[EpisodeSpec]:
    """Every episode of the sweep, in a stable order. Raises InvalidInput."""
    if not cfg.domains:
        raise InvalidInput("domains is empty; valid domains: airline, retail, telecom, mock")
    if cfg.num_samples < 1:
        raise InvalidInput(f"num_samples must be >= 1, got {cfg.num_samples}")
    if cfg.max_tasks is not None and cfg.max_tasks < 1:
        raise InvalidInput(f"max_tasks must be >= 1, got {cfg.max_tasks}")
    domains = list(dict.fromkeys(check_domain(d) for d in cfg.domains))
    if cfg.task_ids is not None and len(domains) != 1:
        raise InvalidInput(f"task_ids needs exactly one domain, got domains={domains}")
    specs = []
    for domain in domains:
        assets = load_domain(domain)
        if cfg.task_ids is not None:
            ids = [str(t) for t in cfg.task_ids]
            for t in ids:
                assets.task(t)
        else:
            ids = assets.task_ids(cfg.split)
        if cfg.max_tasks is not None:
            ids = ids[: cfg.max_tasks]
        for task_id in ids:
            resolve(EpisodeSpec(domain, task_id), cfg)  # solo / user-simulator feasibility
            for sample in range(cfg.num_samples):
                specs.append(EpisodeSpec(domain, task_id, sample, seed=derive_seed(cfg.seed, domain, task_id, sample)))
    return specs
