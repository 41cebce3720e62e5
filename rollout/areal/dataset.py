"""The task rows AReaL trains on: `dataset_rows(domain, split, ...)`, one dict per row,
`{"domain", "task_id", "split"}` (plus `"overrides"`, per-row config overrides, when given),
in tau2's split order; the workflow (`rollout.areal.Tau2Agent`) reads them (rows.py).
"""

from __future__ import annotations

from typing import Optional


def dataset_rows(
    domain: str, split: str, *, min_rows: int = 0, overrides: Optional[dict] = None, config: Optional[str] = None
) -> list[dict]:
    """The rows of a split of a tau2 domain or task set (InvalidInput for an unknown domain or
    split); `config`: a config file whose task_sets are registered first."""
    from rollout.core.config import load_config
    from rollout.env.domains import check_domain, load_domain
    from rollout.env.task_sets import register_task_sets

    if overrides:
        load_config(overrides)  # per-row overrides are config keys: validate them now
    if config:
        register_task_sets(load_config(files=[config]).task_sets)
    ids = load_domain(check_domain(domain)).task_ids(split)
    rows = [{"domain": domain, "task_id": t, "split": split, **({"overrides": overrides} if overrides else {})} for t in ids]
    out = list(rows)
    while rows and len(out) < min_rows:
        out.extend(rows)
    return out
