"""`tau2-rollout dataset domain=airline split=train out=airline_train.jsonl [min_rows=128] [overrides={...}]`

Writes the task rows AReaL trains on, one JSON object per line: `{"domain", "task_id",
"split"}` (plus `"overrides"`, per-row config overrides, when given), in tau2's split
order. `min_rows` repeats the rows until there are at least that many (AReaL batches
rows). Load with `datasets.load_dataset("json", data_files=out, split="train")` and pass
to AReaL's trainer with `workflow="rollout.areal.Tau2Agent"` (see launch/areal_train.py).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional

from rollout.core.failures import InvalidInput


@dataclass
class DatasetConfig:
    CONF_FILES: ClassVar[tuple[str, ...]] = ()

    domain: str = "airline"
    split: str = "train"
    out: Optional[str] = None
    min_rows: int = 0
    overrides: dict[str, Any] = field(default_factory=dict)


def dataset_rows(domain: str, split: str, *, min_rows: int = 0, overrides: Optional[dict] = None) -> list[dict]:
    """The rows of a tau2 split (InvalidInput for an unknown domain or split)."""
    from rollout.core.config import load_config
    from rollout.env.domains import check_domain, load_domain

    if overrides:
        load_config(overrides)  # per-row overrides are config keys: validate them now
    ids = load_domain(check_domain(domain)).task_ids(split)
    rows = [{"domain": domain, "task_id": t, "split": split, **({"overrides": overrides} if overrides else {})} for t in ids]
    out = list(rows)
    while rows and len(out) < min_rows:
        out.extend(rows)
    return out


def main(argv=None) -> int:
    from rollout.core.config import load_config

    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    try:
        cfg = load_config(argv, schema=DatasetConfig)
        rows = dataset_rows(cfg.domain, cfg.split, min_rows=cfg.min_rows, overrides=cfg.overrides or None)
    except InvalidInput as e:
        print(f"error: {e.failure.message}", file=sys.stderr)
        return 2
    out = Path(cfg.out or f"{cfg.domain}_{cfg.split}.jsonl")
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {len(rows)} rows to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
