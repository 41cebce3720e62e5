"""The episode list of a sweep: (domain x task x sample) as the rollout pool's requests, with stable keys.

The selection is checked here, before Ray starts: domains and task sets (read and checked), split, task ids
(known, each once, in the split), sizes. Each episode is then checked once, by the pool (`RolloutPool.check`:
solo feasibility, the user simulator), which also derives its seed from (`seed`, domain, task, sample). A plan
never holds the same key twice. Errors are `InvalidInput` naming what is valid.
"""

from __future__ import annotations

from rollout.core.failures import InvalidInput
from rollout.env.domains import check_domain, known_domains, load_domain
from rollout.env.task_sets import register_task_sets
from rollout.pool import RolloutRequest
from rollout.sweep.config import SweepConfig

Key = tuple[str, str, int]  # (domain, task_id, sample)


def key_of(request: RolloutRequest) -> Key:
    return (request.domain, str(request.task_id), request.sample)


def plan_requests(cfg: SweepConfig) -> list[RolloutRequest]:
    """Every episode of the sweep, in a stable order. Raises InvalidInput."""
    register_task_sets(cfg.task_sets)
    if not cfg.domains:
        raise InvalidInput(f"domains is empty; valid domains: {', '.join(known_domains())}")
    domains = list(dict.fromkeys(check_domain(d) for d in cfg.domains))
    if cfg.task_ids is not None and len(domains) != 1:
        raise InvalidInput(f"task_ids needs exactly one domain, got domains={domains}")
    if cfg.task_ids is not None and not cfg.task_ids:
        raise InvalidInput("task_ids=[] selects no episode; valid: null (every task of the split) or a list of task ids")
    requests = []
    for domain in domains:
        assets = load_domain(domain)
        if cfg.task_ids is not None:
            ids = _explicit_ids(cfg, assets)
        else:
            ids = assets.task_ids(cfg.split)
        if cfg.max_tasks is not None:
            ids = ids[: cfg.max_tasks]
        requests += [RolloutRequest(domain, task_id, sample) for task_id in ids for sample in range(cfg.num_samples)]
    return requests


def _explicit_ids(cfg: SweepConfig, assets) -> list[str]:
    """The explicit task ids: each known, each once, each in the requested split."""
    ids = [str(t) for t in cfg.task_ids]
    seen = set()
    for t in ids:
        if t in seen:
            raise InvalidInput(f"task_ids lists '{t}' twice; valid: each task id once (use num_samples for repeats)")
        seen.add(t)
        assets.task(t)
    in_split = set(assets.task_ids(cfg.split))
    outside = [t for t in ids if t not in in_split]
    if outside:
        others = sorted(name for name, members in assets.splits.items() if outside[0] in members)
        raise InvalidInput(
            f"task_ids {outside} of domain '{assets.name}' are not in split '{cfg.split}'"
            + (f"; '{outside[0]}' is in split(s) {', '.join(others)}: set split=..." if others else "")
        )
    return ids
