"""A sweep's episode record (`SweepRecord`) and its log, `<output_dir>/episodes.jsonl`.

`SweepRecord` is the one shape of a finished episode: the sweep builds it from the pool's
trajectory (the worker's `EpisodeResult` plus the attempts, earlier failures and worker id) and
every reader (metrics, progress, report, exports, SFT, resume) reads it. On disk it is one JSON
object per line with the field names users rely on: `key{domain,task_id,sample}`, `status`
ok|failed, `reward` (null when failed), `failure{class,message}`, `termination`, `reward_info`,
`messages`, `invalid_tool_calls`, `steps`, `tool_errors`, `usage`, `durations`, `attempts`,
`earlier_failures`, `seed`, `worker`, `solo`, `tau2_domain` (the tau2 domain a task set runs in), and with token capture `turns` and `capture_errors`.
A line is validated when read (pydantic, `_Line`): a record with a field of the wrong type (a
reward that is not a number from 0 to 1, as tau2's rewards are, messages that are not a list of
objects, ...) is not a record, and the error names the field.

`EpisodeStore` appends and flushes one record per finished episode (scored or finally failed).
Nothing written is ever rewritten: a rerun on the same directory runs the planned episodes that
have no record and those whose last record is an infrastructure failure, and appends their new
records; the last record of a key is its outcome (`iter_records` yields exactly those). A key
whose last record is scored or failed on bad input is settled and never run again. A line cut
short by a killed writer is dropped on open; a complete line that is not a valid record is
skipped and counted in `corrupt_lines`, never fatal. One writer at a time: a second sweep on the
same directory is refused. Readers stream the file one line at a time (two passes: the keys,
then the last record of each), so a sweep of any size is summarised and resumed in constant
memory besides its keys.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any, Optional

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError, model_validator

from rollout.core.failures import Failure, FailureClass, InvalidInput
from rollout.core.results import EpisodeResult
from rollout.core.tokens import TurnRecord
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
    def from_result(
        cls, result: EpisodeResult, *, attempts: int = 1, earlier_failures: list[Failure] = (), worker: Optional[int] = None
    ) -> SweepRecord:
        """The record of an episode's final outcome (the driver's one constructor)."""
        return cls(
            **{f.name: getattr(result, f.name) for f in fields(EpisodeResult)},
            attempts=attempts,
            earlier_failures=list(earlier_failures),
            worker=worker,
        )

    def to_json(self) -> dict[str, Any]:
        domain, task_id, sample = self.key
        out = {"key": {"domain": domain, "task_id": task_id, "sample": sample}, "status": self.status}
        for f in fields(self):
            if f.name not in ("domain", "task_id", "sample"):
                out[f.name] = getattr(self, f.name)
        out["failure"] = self.failure.to_dict() if self.failure else None
        out["earlier_failures"] = [f.to_dict() for f in self.earlier_failures]
        out["turns"] = [t.to_dict() if t is not None else None for t in self.turns]
        return out

    @classmethod
    def from_trajectory(cls, trajectory) -> SweepRecord:
        """The record of a pool trajectory's final outcome (the sweep's one constructor)."""
        return cls.from_result(
            trajectory.result,
            attempts=trajectory.attempts,
            earlier_failures=trajectory.earlier_failures,
            worker=trajectory.tags.get("worker"),
        )

    @classmethod
    def from_json(cls, d: Any) -> SweepRecord:
        """Parse one line's object; raises ValueError naming the first field that is not a
        record's (see module doc)."""
        try:
            line = _Line.model_validate(d)
        except ValidationError as e:
            raise ValueError(_first_error(e)) from None
        return cls(
            domain=line.key.domain,
            task_id=line.key.task_id,
            sample=line.key.sample,
            reward=line.reward,
            failure=line.failure.failure() if line.failure else None,
            seed=line.seed,
            solo=bool(line.solo),
            tau2_domain=line.tau2_domain,
            termination=line.termination,
            reward_info=line.reward_info,
            messages=line.messages or [],
            invalid_tool_calls=line.invalid_tool_calls or [],
            steps=line.steps or 0,
            tool_errors=line.tool_errors or 0,
            usage=line.usage or {},
            durations=line.durations or {},
            turns=[TurnRecord.from_dict(t) if t else None for t in line.turns or []],
            capture_errors=line.capture_errors or [],
            budget_reached=line.budget_reached,
            episode_id=line.episode_id,
            attempts=line.attempts or 1,
            earlier_failures=[f.failure() for f in line.earlier_failures or []],
            worker=line.worker,
        )

    @property
    def settled(self) -> bool:
        """Scored, or failed on bad input: a rerun does not run it again."""
        return self.failure is None or not self.failure.failure_class.retryable


class _Key(BaseModel):
    model_config = ConfigDict(coerce_numbers_to_str=True)  # a task id written as a number is its text

    domain: StrictStr
    task_id: str
    sample: StrictInt


class _Failure(BaseModel):
    failure_class: FailureClass = Field(alias="class")
    message: str

    def failure(self) -> Failure:
        return Failure(self.failure_class, self.message)


Reward = Annotated[float, Field(ge=0.0, le=1.0, strict=True, allow_inf_nan=False)]  # tau2's rewards


class _Line(BaseModel):
    """One line of episodes.jsonl as `SweepRecord.to_json` writes it; unknown fields are ignored,
    null stands for a field's empty value."""

    key: _Key
    reward: Optional[Reward] = None
    failure: Optional[_Failure] = None
    seed: Optional[StrictInt] = None
    solo: Optional[StrictBool] = None
    tau2_domain: Optional[StrictStr] = None
    termination: Optional[StrictStr] = None
    reward_info: Optional[dict] = None
    messages: Optional[list[dict]] = None
    invalid_tool_calls: Optional[list] = None
    steps: Optional[StrictInt] = None
    tool_errors: Optional[StrictInt] = None
    usage: Optional[dict] = None
    durations: Optional[dict] = None
    turns: Optional[list[Optional[dict]]] = None  # token lists as written (TurnRecord.from_dict)
    capture_errors: Optional[list] = None
    budget_reached: Optional[StrictStr] = None
    episode_id: Optional[StrictStr] = None
    attempts: Optional[StrictInt] = None
    earlier_failures: Optional[list[_Failure]] = None
    worker: Optional[StrictInt] = None

    @model_validator(mode="after")
    def _one_outcome(self) -> _Line:
        if (self.failure is None) == (self.reward is None):
            raise ValueError("exactly one of reward and failure must be set")
        return self


def _first_error(e: ValidationError) -> str:
    """The first problem as one line: the field's dotted path, what is wrong, the value (short)."""
    err = e.errors(include_url=False)[0]
    where = ".".join(str(part) for part in err["loc"]) or "record"
    message = err["msg"].removeprefix("Value error, ")
    shown = repr(err["input"]) if err["loc"] else ""
    return f"{where}: {message}" + (f" (got {shown[:60]})" if shown else "")


class LogScan:
    """One pass over an episodes.jsonl, line by line (memory: one line at a time).

    Iterating yields (line number, record) for the valid records, oldest first; afterwards
    `corrupt` is the number of complete lines that were not valid records. A last line without
    its newline (cut short by a killed writer) is neither. `keys_only=True` yields (line number,
    (key, settled)) instead, without building the record's transcript."""

    def __init__(self, path: Path, keys_only: bool = False):
        self.path, self.keys_only, self.corrupt = path, keys_only, 0

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        if not self.path.is_file():
            return
        with open(self.path, "rb") as f:
            for number, line in enumerate(f):
                if not line.endswith(b"\n"):
                    return  # a partial tail
                if not line.strip():
                    continue
                try:
                    d = json.loads(line)
                    yield number, (_key_of(d) if self.keys_only else SweepRecord.from_json(d))
                except ValueError:
                    self.corrupt += 1


def _key_of(d: Any) -> tuple[Key, bool]:
    """(key, settled) of a line's object, checked as a whole record (its transcript aside)."""
    if not isinstance(d, dict) or not isinstance(d.get("messages", []), (list, type(None))):
        raise ValueError("not an episode record")
    record = SweepRecord.from_json({**d, "messages": None, "reward_info": None, "turns": None})
    return record.key, record.settled


def latest(path: Path) -> tuple[dict[Key, tuple[int, bool]], int]:
    """({key: (line number of its last record, settled)}, corrupt lines) of a log."""
    scan = LogScan(path, keys_only=True)
    last = {key: (number, settled) for number, (key, settled) in scan}
    return last, scan.corrupt


def _latest_records(path: Path) -> Iterator[SweepRecord]:
    last, _ = latest(path)
    wanted = {number for number, _ in last.values()}
    return (record for number, record in LogScan(path) if number in wanted)


def iter_records(output_dir: str | os.PathLike) -> Iterator[SweepRecord]:
    """The outcome of every key of a sweep's episodes.jsonl (its last valid record), streamed,
    without taking the writer's lock. Raises InvalidInput if the directory has no log."""
    path = Path(output_dir) / EPISODES_FILE
    if not path.exists():
        raise InvalidInput(f"no {EPISODES_FILE} in {output_dir}")
    return _latest_records(path)


def read_records(output_dir: str | os.PathLike) -> list[SweepRecord]:
    """`iter_records` as a list (for small sweeps and tests)."""
    return list(iter_records(output_dir))


def peek_settled(output_dir: str | os.PathLike) -> set[Key]:
    """The keys a rerun would not run again (scored, or failed on bad input), read-only."""
    last, _ = latest(Path(output_dir) / EPISODES_FILE)
    return {key for key, (_, settled) in last.items() if settled}


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
        last, self.corrupt_lines = latest(self.path)
        self._settled = {key: settled for key, (_, settled) in last.items()}  # key -> its last record settles it
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
        """The outcome of every key (its last valid record), streamed from the file."""
        self._fh.flush()
        return _latest_records(self.path)

    def settled_keys(self) -> set[Key]:
        """Keys a rerun does not run again: their last record is scored or failed on bad input."""
        return {key for key, settled in self._settled.items() if settled}

    def unsettled_keys(self) -> set[Key]:
        """Keys whose last record is an infrastructure failure (a rerun runs them again)."""
        return {key for key, settled in self._settled.items() if not settled}

    def append(self, record: SweepRecord) -> None:
        """Write one record and flush it to the OS (survives the writer being killed). With
        `transcripts=False` the record's messages are left out of the line."""
        d = record.to_json()
        if not self.transcripts:
            d["messages"] = []
        self._fh.write(json.dumps(d, ensure_ascii=False) + "\n")
        self._fh.flush()
        self._settled[record.key] = record.settled

    def close(self) -> None:
        self._fh.close()
        self._lock.close()

    def __enter__(self) -> EpisodeStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
