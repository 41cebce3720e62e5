"""A file of tau2 tasks checked with no LLM: `validate_tasks(domain, tasks_file, ...) -> Report`.

For every task, in file order, a `TaskVerdict` whose `status` is the first check it fails:

1. tau2's `Task` model accepts it (else `schema_error`, the field named), its id is not one an
   earlier task of the file took (`duplicate_id`), every tool and function it names exists in
   the domain (`unknown_tool`, the field named): task_sets.check_tasks;
2. its gold play (gold.py) is replayed through the domain's environment, over `db` when given:
   assistant actions as agent tool calls, user actions as the user's tool calls, then the
   closing and the user's stop (solo: every action by the agent, then `done`); a write action
   (or a user's device action) the environment answers with an error is `gold_action_failed`
   (which action, the tool's error). A read action that finds nothing is a legitimate step of
   a dialogue (tau2's retail has such lookups): noted in the verdict's message, not a failure;
3. tau2's own evaluator scores the replay; a reward below 1 is `gold_reward_below_1` (which
   check failed: DB, an env assertion, an action, a communicate_info), an evaluator that raises
   `evaluation_error`.

The others are `valid`. Bad input (an unreadable or non-JSON file, a file that is not a list,
an unknown domain, a database of the wrong shape, solo on a domain without solo mode) raises
InvalidInput.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from tau2.data_model.message import AssistantMessage
from tau2.data_model.simulation import TerminationReason
from tau2.environment.toolkit import ToolType
from tau2.utils.utils import get_now

from rollout.core.config.schema import TaskSetConfig
from rollout.core.failures import EpisodeFailure, InvalidInput
from rollout.env.domains import load_domain
from rollout.env.evaluation import score, simulation_run
from rollout.env.gold import GREETING, STOP, closing_text, communicate_info, gold_actions
from rollout.env.local import start_environment
from rollout.env.protocol import RawToolCall, StopEpisode
from rollout.env.recorder import EpisodeRecorder
from rollout.env.task_sets import LoadedTaskSet, base_constructor, check_tasks, install, load_db, read_json, read_splits

VALID = "valid"
SCHEMA_ERROR = "schema_error"  # also what task_sets.check_tasks reports
GOLD_ACTION_FAILED = "gold_action_failed"
GOLD_REWARD_BELOW_1 = "gold_reward_below_1"
EVALUATION_ERROR = "evaluation_error"
STUB_USER_REQUEST = "I need help."  # the user's first message in a replay (the evaluator does not read it)


@dataclass(frozen=True)
class TaskVerdict:
    """One task's outcome: `status` VALID or why not, the field or check concerned, the detail."""

    index: int
    id: Optional[str]
    status: str
    field: str = ""
    message: str = ""

    def line(self) -> str:
        who = f"task {self.id!r}" if self.id is not None else "task"
        where = f" [{self.field}]" if self.field else ""
        return f"{who} (#{self.index}): {self.status}{where}: {self.message}"


@dataclass
class Report:
    domain: str
    tasks_file: str
    db: Optional[str]
    solo: bool
    verdicts: list[TaskVerdict] = field(default_factory=list)
    seconds: float = 0.0  # the whole run, reading the files and loading the domain included
    replay_seconds: float = 0.0  # replaying and scoring the tasks that passed the checks
    replayed: int = 0

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for v in self.verdicts:
            out[v.status] = out.get(v.status, 0) + 1
        return dict(sorted(out.items()))

    @property
    def all_valid(self) -> bool:
        return all(v.status == VALID for v in self.verdicts)

    @property
    def tasks_per_second(self) -> Optional[float]:
        """Tasks replayed and scored per second (loading excluded: what scales with the file)."""
        return round(self.replayed / self.replay_seconds, 2) if self.replay_seconds > 0 else None

    def to_json(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "tasks_file": self.tasks_file,
            "db": self.db,
            "solo": self.solo,
            "total": len(self.verdicts),
            "valid": self.all_valid,
            "counts": self.counts,
            "seconds": round(self.seconds, 3),
            "replayed": self.replayed,
            "replay_seconds": round(self.replay_seconds, 3),
            "tasks_per_second": self.tasks_per_second,
            "tasks": [asdict(v) for v in self.verdicts],
        }

    def text(self) -> str:
        lines = [v.line() for v in self.verdicts if v.status != VALID]
        counts = ", ".join(f"{n} {status}" for status, n in self.counts.items())
        lines.append(
            f"{len(self.verdicts)} tasks of {self.domain} ({self.tasks_file}): {counts or 'none'}; "
            f"{self.seconds:.2f} s ({self.replayed} replayed and scored in {self.replay_seconds:.2f} s: "
            f"{self.tasks_per_second or '-'} tasks/s)"
        )
        return "\n".join(lines)


def validate_tasks(
    domain: str, tasks_file: str, *, db: Optional[str] = None, splits: Optional[str] = None, solo: bool = False
) -> Report:
    """The report of a task file (module doc). Raises InvalidInput for bad input."""
    started = time.perf_counter()
    env = base_constructor(domain)()
    if solo:
        try:
            base_constructor(domain)(solo_mode=True)
        except ValueError:
            raise InvalidInput(f"domain '{domain}' does not support solo mode; validate with solo=false") from None
    custom_db = load_db(env, db) if db else None
    raw = read_json(tasks_file, "tasks file")
    checked = check_tasks(raw, env, source=f"tasks file {tasks_file}")
    report = Report(domain=domain, tasks_file=tasks_file, db=db, solo=solo)
    verdicts: dict[int, TaskVerdict] = {
        p.index: TaskVerdict(p.index, p.task_id, p.kind, p.field, p.message) for p in checked.problems
    }
    if checked.tasks:
        ids = [t.id for t in checked.tasks]
        config = TaskSetConfig(domain=domain, tasks=tasks_file, db=db, splits=splits)
        name = f"validate:{domain}:{_fingerprint(tasks_file, db)}"
        loaded = LoadedTaskSet(name, config, checked.tasks, read_splits(splits, ids) if splits else {"base": ids}, custom_db)
        assets = load_domain(install(loaded))
        file_index = _file_positions(raw, verdicts)
        replay_started = time.perf_counter()
        for task in checked.tasks:
            i = file_index[task.id]
            verdicts[i] = check_gold(assets, task, i, solo)
        report.replay_seconds, report.replayed = time.perf_counter() - replay_started, len(checked.tasks)
    report.verdicts = [verdicts[i] for i in sorted(verdicts)]
    report.seconds = time.perf_counter() - started
    return report


def _file_positions(raw: list, problems: dict[int, TaskVerdict]) -> dict[str, int]:
    """Task id -> its position in the file, for the tasks that passed the checks (first use of an id)."""
    out: dict[str, int] = {}
    for i, entry in enumerate(raw):
        if i not in problems and isinstance(entry, dict):
            out.setdefault(str(entry.get("id")), i)
    return out


def _fingerprint(tasks_file: str, db: Optional[str]) -> str:
    digest = hashlib.sha256(Path(tasks_file).read_bytes())
    if db:
        digest.update(Path(db).read_bytes())
    return digest.hexdigest()[:12]


def check_gold(assets, task, index: int, solo: bool) -> TaskVerdict:
    """Replay a task's gold actions and score the replay with tau2's evaluator (module doc)."""
    if solo:
        try:
            assets.check_solo(task)
        except InvalidInput:
            why = "cannot run solo: it has no ticket, or its message history holds user turns (tau2's solo agent rule)"
            return TaskVerdict(index, task.id, SCHEMA_ERROR, "ticket", why)
    try:
        simulation, errors = replay_gold(assets, task, solo)
    except (ValueError, AssertionError) as e:  # tau2 refuses the task's initial state or history
        return TaskVerdict(index, task.id, EVALUATION_ERROR, "initial_state", f"{type(e).__name__}: {e}")
    writes = [e for e in errors if e.writes]
    if writes:
        return TaskVerdict(index, task.id, GOLD_ACTION_FAILED, writes[0].field, writes[0].message)
    notes = "; ".join(f"{e.field}: read {e.message}" for e in errors)  # a lookup that finds nothing is a legitimate gold step
    try:
        info = score(simulation, task, domain=assets.name, solo=solo)
    except EpisodeFailure as e:
        return TaskVerdict(index, task.id, EVALUATION_ERROR, "evaluation_criteria", e.failure.message)
    if info.reward < 1.0:
        check, why = failed_check(info)
        return TaskVerdict(
            index, task.id, GOLD_REWARD_BELOW_1, check, why + (f" (gold actions that failed: {notes})" if notes else "")
        )
    return TaskVerdict(index, task.id, VALID, message=f"gold read actions that failed: {notes}" if notes else "")


@dataclass(frozen=True)
class GoldError:
    """A gold action the environment answered with an error."""

    field: str  # evaluation_criteria.actions.<i>
    message: str  # the call and the tool's error
    writes: bool  # a write (or user-device) action: the task's expected state cannot be reached


def replay_gold(assets, task, solo: bool):
    """(tau2's SimulationRun of the task's gold play (gold.py), the gold actions that failed),
    recorded by the episode's own recorder on a fresh environment of the domain."""

    start = get_now()
    env, history = start_environment(assets, task, solo)
    rec = EpisodeRecorder(env, solo=solo, max_steps=10**9, max_errors=10**9, history=history)
    if not solo and not history:
        rec.add_opening(AssistantMessage(role="assistant", content=GREETING))
        rec.record_user_message(STUB_USER_REQUEST, [])
    errors = []
    for i, action in enumerate(gold_actions(task)):
        call = RawToolCall(id=f"gold_{i}", name=action.name, arguments=json.dumps(action.arguments))
        by_user = action.requestor == "user" and not solo
        if by_user:
            rec.record_user_message(None, [call])
        else:
            rec.record_agent_response(None, [call])
        result = rec.messages[-1]
        if getattr(result, "error", False):
            message = f"{action.requestor} action {action.name}({_args(action.arguments)}): {result.content}"
            errors.append(GoldError(f"evaluation_criteria.actions.{i}", message, _writes(env, action.name, by_user)))
    if solo:
        try:
            raise rec.record_agent_stop()
        except StopEpisode as stop:
            termination = stop.reason
    else:
        if communicate_info(task):
            rec.record_agent_response(closing_text(task), [])
        rec.record_user_message(STOP, [])
        termination = TerminationReason.USER_STOP
    simulation = simulation_run(
        task_id=task.id,
        messages=rec.final_messages(),
        termination=termination,
        start_time=start,
        end_time=get_now(),
        duration=0.0,
        seed=None,
    )
    return simulation, errors


def _writes(env, name: str, by_user: bool) -> bool:
    """Whether a tool changes state: tau2's WRITE tools, and every user-device action."""
    if by_user or (env.tools is None or not env.tools.has_tool(name)):
        return True
    return env.tools.tool_type(name) == ToolType.WRITE


def _args(arguments: dict) -> str:
    text = json.dumps(arguments, sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "..."


def failed_check(info) -> tuple[str, str]:
    """(the reward component, what failed in it) of a reward below 1 (tau2's RewardInfo)."""
    parts = []
    breakdown = {getattr(k, "value", k): v for k, v in (info.reward_breakdown or {}).items()}
    for component in [k for k, v in breakdown.items() if v < 1.0] or list(breakdown) or ["reward"]:
        parts.append((component, _why(component, info)))
    field_, message = parts[0]
    return field_, "; ".join(f"{c}: {m}" for c, m in parts)


def _why(component: str, info) -> str:
    if component == "DB" and info.db_check is not None:
        return "the database after the gold actions differs from the one the gold actions produce on the evaluator's side"
    if component == "ENV_ASSERTION":
        failed = [c.env_assertion for c in info.env_assertions or [] if not c.met]
        return ", ".join(f"env assertion {a.func_name}({_args(a.arguments)}) is not {a.assert_value}" for a in failed) or "failed"
    if component == "ACTION":
        failed = [c.action for c in info.action_checks or [] if not c.action_match]
        return ", ".join(f"action {a.name} not matched" for a in failed) or "failed"
    if component == "COMMUNICATE":
        failed = [c.info for c in info.communicate_checks or [] if not c.met]
        return (
            ", ".join(
                f"communicate_info {i!r} is in no agent message"
                + (" (tau2 removes commas from messages first)" if "," in i else "")
                for i in failed
            )
            or "failed"
        )
    return f"reward {info.reward}"
