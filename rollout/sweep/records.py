"""A sweep's episode log: `<output_dir>/episodes.jsonl`, appended and flushed per episode.

One JSON object per finished episode (scored or finally failed). A rerun on the same
directory reads the completed keys and skips them; a line cut short by a killed writer is
dropped on open. One writer at a time: a second sweep on the same directory is refused.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

from rollout.failures import InvalidInput
from rollout.sweep.plan import Key

EPISODES_FILE = "episodes.jsonl"


def read_records(output_dir: str | os.PathLike) -> list[dict]:
    """Every complete record of a sweep's episodes.jsonl, without taking the writer's lock."""
    path = Path(output_dir) / EPISODES_FILE
    if not path.exists():
        raise InvalidInput(f"no {EPISODES_FILE} in {output_dir}")
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:  # a line cut short by a killed writer
            continue
    return records


def record_key(record: dict) -> Key:
    k = record["key"]
    return (k["domain"], str(k["task_id"]), int(k["sample"]))


class EpisodeStore:
    """Append-only episode log of one output directory (see module doc)."""

    def __init__(self, output_dir: str | os.PathLike):
        self.dir = Path(output_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.dir / ".lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise InvalidInput(f"another sweep is writing to {self.dir}; use another output_dir") from None
        self.path = self.dir / EPISODES_FILE
        self._drop_partial_tail()
        self._fh = open(self.path, "a", encoding="utf-8")

    def _drop_partial_tail(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(self.path, "r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)

    def records(self) -> Iterator[dict]:
        """Every complete record, oldest first."""
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)

    def completed_keys(self) -> set[Key]:
        return {record_key(r) for r in self.records()}

    def append(self, record: dict) -> None:
        """Write one record and flush it to the OS (survives the writer being killed)."""
        self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()
        self._lock.close()

    def __enter__(self) -> EpisodeStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
