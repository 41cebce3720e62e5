"""A sweep's episode record (`SweepRecord`) and its log, `<output_dir>/episodes.jsonl`.

`SweepRecord` is the one shape of a finished episode: the driver builds it (from the
worker's `EpisodeResult` plus the driver's attempts, earlier failures and worker id) and
every reader (metrics, progress, report, exports, SFT, resume) reads it. On disk it is one
JSON object per line with the field names users rely on:
`key{domain,task_id,sample}`, `status` ok|failed, `reward` (null when failed),
`failure{class,message}`, `termination`, `reward_info`, `messages`, `invalid_tool_calls`,
`steps`, `tool_errors`, `usage`, `durations`, `attempts`, `earlier_failures`, `seed`,
`worker`, `solo`.

`EpisodeStore` appends and flushes one record per finished episode (scored or finally
failed). A rerun on the same directory reads the completed keys and skips them; a line
cut short by a killed writer is dropped on open; a complete line that is not a valid
record (bad JSON, no key) is skipped and counted in `corrupt_lines`, never fatal. One
writer at a time: a second sweep on the same directory is refused. Readers stream the
file one line at a time (`iter_records`, `EpisodeStore.records`), so a sweep of any size
is summarised and resumed in constant memory besides its keys.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

from rollout.failures import Failure, InvalidInput
from rollout.results import EpisodeResult
from rollout.sweep.plan import Key

EPISODES_FILE = "episodes.jsonl"


@dataclass
class SweepRecord(EpisodeResult):
    """One finished episode of a sweep: its final EpisodeResult (a reward, status ok, or a
    final failure, never both) and how the sweep got it."""

    attempts: int = 1
    earlier_failures: list[Failure] = field(default_factory=list)
    worker: Optional[int] = None

    @property
    def key(self) -> Key:
        return (self.domain, str(self.task_id), int(self.sample))

    @property
    def status(self) -> str:
        return "ok" if self.failure is None else "failed"

    @property
    def failure_class(self) -> Optional[str]:
        return self.failure.failure_class.value if self.failure else None

    @classmethod
    def from_result(cls, result: EpisodeResult, *, attempts: int = 1, earlier_failures: list[Failure] = (),
                    worker: Optional[int] = None) -> SweepRecord:
        """The record of an episode's final outcome (the driver's one constructor)."""
        return cls(**{f.name: getattr(result, f.name) for f in fields(EpisodeResult)}, attempts=attempts,
                   earlier_failures=list(earlier_failures), worker=worker)

    def to_json(self) -> dict[str, Any]:
        domain, task_id, sample = self.key
        out = {"key": {"domain": domain, "task_id": task_id, "sample": sample}, "status": self.status}
        for f in fields(self):
            if f.name not in ("domain", "task_id", "sample"):
                out[f.name] = getattr(self, f.name)
        out["failure"] = self.failure.to_dict() if self.failure else None
        out["earlier_failures"] = [f.to_dict() for f in self.earlier_failures]
        return out

    @classmethod
    def from_json(cls, d: Any) -> SweepRecord:
        """Parse one line's object; raises ValueError if it is not a record."""
        try:
            k = d["key"]
            failure = Failure.from_dict(d["failure"]) if d.get("failure") else None
            reward = None if d.get("reward") is None else float(d["reward"])
            if (failure is None) == (reward is None):
                raise ValueError("exactly one of reward and failure must be set")
            return cls(domain=str(k["domain"]), task_id=str(k["task_id"]), sample=int(k["sample"]), reward=reward,
                       failure=failure, seed=d.get("seed"), solo=bool(d.get("solo")),
                       termination=d.get("termination"), reward_info=d.get("reward_info"),
                       messages=d.get("messages") or [], invalid_tool_calls=d.get("invalid_tool_calls") or [],
                       steps=int(d.get("steps") or 0), tool_errors=int(d.get("tool_errors") or 0),
                       usage=d.get("usage") or {}, durations=d.get("durations") or {},
                       attempts=int(d.get("attempts") or 1),
                       earlier_failures=[Failure.from_dict(f) for f in d.get("earlier_failures") or []],
                       worker=d.get("worker"))
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"not an episode record: {type(e).__name__}: {e}") from None


class LogScan:
    """One pass over an episodes.jsonl, line by line (memory: one line at a time).

    Iterating yields the valid records, oldest first; afterwards `corrupt` is the number of
    complete lines that were not valid records. A last line without its newline (cut short
    by a killed writer) is neither. `keys_only=True` parses only each line's key."""

    def __init__(self, path: Path, keys_only: bool = False):
        self.path, self.keys_only, self.corrupt = path, keys_only, 0

    def __iter__(self) -> Iterator[Any]:
        if not self.path.is_file():
            return
        with open(self.path, "rb") as f:
            for line in f:
                if not line.endswith(b"\n"):
                    return  # a partial tail
                if not line.strip():
                    continue
                try:
                    d = json.loads(line)
                    yield _key_of(d) if self.keys_only else SweepRecord.from_json(d)
                except ValueError:
                    self.corrupt += 1


def _key_of(d: Any) -> Key:
    try:
        SweepRecord.from_json({**d, "messages": None, "reward_info": None})  # validates the record
        k = d["key"]
        return (str(k["domain"]), str(k["task_id"]), int(k["sample"]))
    except (KeyError, TypeError) as e:
        raise ValueError(f"not an episode record: {e}") from None


def iter_records(output_dir: str | os.PathLike) -> Iterator[SweepRecord]:
    """Every valid record of a sweep's episodes.jsonl, streamed, without taking the writer's
    lock. Raises InvalidInput if the directory has no log."""
    path = Path(output_dir) / EPISODES_FILE
    if not path.exists():
        raise InvalidInput(f"no {EPISODES_FILE} in {output_dir}")
    return iter(LogScan(path))


def read_records(output_dir: str | os.PathLike) -> list[SweepRecord]:
    """`iter_records` as a list (for small sweeps and tests)."""
    return list(iter_records(output_dir))


def peek_completed(output_dir: str | os.PathLike) -> set[Key]:
    """The keys already in a sweep's log, read-only (empty if there is none yet)."""
    return set(LogScan(Path(output_dir) / EPISODES_FILE, keys_only=True))


class EpisodeStore:
    """Append-only episode log of one output directory (see module doc)."""

    def __init__(self, output_dir: str | os.PathLike, transcripts: bool = True):
        self.dir = Path(output_dir)
        if self.dir.exists() and not self.dir.is_dir():
            raise InvalidInput(f"output_dir='{output_dir}' is a file; valid: a directory (new or a sweep's, to resume)")
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.dir / ".lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise InvalidInput(f"another sweep is writing to {self.dir}; use another output_dir") from None
        self.path = self.dir / EPISODES_FILE
        self.transcripts = transcripts
        self._drop_partial_tail()
        scan = LogScan(self.path, keys_only=True)
        self._done = set(scan)
        self.corrupt_lines = scan.corrupt
        self._fh = open(self.path, "a", encoding="utf-8")

    def _drop_partial_tail(self) -> None:
        if not self.path.exists() or not self.path.stat().st_size:
            return
        with open(self.path, "r+b") as f:  # find the last newline from the end, in blocks
            end = f.seek(0, os.SEEK_END)
            f.seek(end - 1)
            if f.read(1) == b"\n":
                return
            pos = end
            while pos > 0:
                step = min(1 << 16, pos)
                f.seek(pos - step)
                block = f.read(step)
                cut = block.rfind(b"\n")
                if cut >= 0:
                    f.truncate(pos - step + cut + 1)
                    return
                pos -= step
            f.truncate(0)

    def records(self) -> Iterator[SweepRecord]:
        """Every valid record, oldest first (corrupt lines skipped), streamed from the file."""
        self._fh.flush()
        return iter(LogScan(self.path))

    def completed_keys(self) -> set[Key]:
        """Keys of the valid records in the log (read on open, kept up to date by `append`)."""
        return set(self._done)

    def append(self, record: SweepRecord) -> None:
        """Write one record and flush it to the OS (survives the writer being killed). With
        `transcripts=False` the record's messages are left out of the line."""
        d = record.to_json()
        if not self.transcripts:
            d["messages"] = []
        self._fh.write(json.dumps(d, ensure_ascii=False) + "\n")
        self._fh.flush()
        self._done.add(record.key)

    def close(self) -> None:
        self._fh.close()
        self._lock.close()

    def __enter__(self) -> EpisodeStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
