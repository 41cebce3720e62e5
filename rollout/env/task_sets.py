"""Task sets: a file of tau2 `Task`s for one tau2 domain, with an optional database and splits.

A task set is declared in config (`task_sets: {name: {domain, tasks, db, splits}}`) and
registered in tau2's own registry under its name, as a domain (the base domain's environment
constructor, over the set's database when it has one) and as a task set (its tasks and
splits). Every place that takes a domain name then takes the set's name: `load_domain(name)`
reads it from the registry like any domain tau2 registers.

Reading a set checks it fully before anything runs (`read_task_set`): the file is JSON, a
list of objects each valid for tau2's `Task` model, ids unique, every tool a gold action,
initialization action or env assertion names is one the domain has, the database of the
domain's shape. Each problem is one line naming the task and the field (`TaskProblem`);
`register_task_sets` raises InvalidInput with the first. `validate-tasks` (validate.py) reports
them all, per task.
"""

from __future__ import annotations

import functools
import inspect
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from rollout.core.config.schema import TaskSetConfig
from rollout.core.failures import InvalidInput, shown

SCHEMA_ERROR = "schema_error"
UNKNOWN_TOOL = "unknown_tool"
DUPLICATE_ID = "duplicate_id"


@dataclass(frozen=True)
class TaskProblem:
    """Why one task of a file is not usable: `kind` SCHEMA_ERROR / UNKNOWN_TOOL / DUPLICATE_ID,
    the field (dotted path inside the task) and what is wrong."""

    index: int  # position in the file
    task_id: Optional[str]
    kind: str
    field: str
    message: str

    def line(self) -> str:
        who = f"task {self.task_id!r}" if self.task_id is not None else f"task #{self.index}"
        return f"{who} (#{self.index}): {self.kind} in field '{self.field}': {self.message}"


@dataclass(frozen=True)
class TaskFile:
    """A task file read and checked: the usable tasks (in file order) and the problems of the others."""

    tasks: list[Any]  # tau2 Task
    problems: list[TaskProblem]
    total: int


def read_json(path: str, what: str) -> Any:
    """The JSON content of a file. Raises InvalidInput naming the file and the problem."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise InvalidInput(f"{what} {shown(path)} cannot be read: {e.strerror or e}") from None
    try:
        return json.loads(text)
    except ValueError as e:
        raise InvalidInput(f"{what} {shown(path)} is not valid JSON: {e}") from None


def check_tasks(raw: Any, env, *, source: str = "tasks") -> TaskFile:
    """Every entry of `raw` (a task file's JSON) checked with tau2's Task model and against the
    tools of `env` (a tau2 Environment of the domain). Raises InvalidInput when `raw` is not a list."""
    from pydantic import ValidationError
    from tau2.data_model.tasks import Task

    if not isinstance(raw, list):
        raise InvalidInput(f"{source} must be a JSON list of tau2 tasks, got a {type(raw).__name__}")
    tasks, problems, seen = [], [], {}
    for i, entry in enumerate(raw):
        task_id = str(entry.get("id")) if isinstance(entry, dict) and entry.get("id") is not None else None
        try:
            task = Task.model_validate(entry)
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "(task)"
            problems.append(TaskProblem(i, task_id, SCHEMA_ERROR, where, err["msg"]))
            continue
        if task.id in seen:
            problems.append(TaskProblem(i, task.id, DUPLICATE_ID, "id", f"id already used by task #{seen[task.id]}"))
            continue
        seen[task.id] = i
        problem = _unknown_tool(task, env)
        if problem is not None:
            problems.append(TaskProblem(i, task.id, UNKNOWN_TOOL, *problem))
            continue
        tasks.append(task)
    return TaskFile(tasks=tasks, problems=problems, total=len(raw))


def _unknown_tool(task, env) -> Optional[tuple[str, str]]:
    """(field, message) of the first tool or function the task names that the domain lacks."""
    agent_tools = set(env.tools.tools) if env.tools is not None else set()
    user_tools = set(env.user_tools.tools) if env.user_tools is not None else set()
    criteria = task.evaluation_criteria
    for i, action in enumerate((criteria.actions or []) if criteria else []):
        have = user_tools if action.requestor == "user" else agent_tools
        if action.name not in have:
            return f"evaluation_criteria.actions.{i}.name", _not_a_tool(action.name, action.requestor, have)
    initial = task.initial_state
    for i, call in enumerate((initial.initialization_actions or []) if initial else []):
        if not _has_function(env, call.env_type, call.func_name):
            return (
                f"initial_state.initialization_actions.{i}.func_name",
                f"{call.env_type} tools have no function {call.func_name!r}",
            )
    for i, call in enumerate((criteria.env_assertions or []) if criteria else []):
        if not _has_function(env, call.env_type, call.func_name):
            return (
                f"evaluation_criteria.env_assertions.{i}.func_name",
                f"{call.env_type} tools have no function {call.func_name!r}",
            )
    return None


def _not_a_tool(name: str, requestor: str, have: set[str]) -> str:
    shown_tools = ", ".join(sorted(have)[:8]) + (", ..." if len(have) > 8 else "")
    return f"the domain's {requestor} tools have no {name!r} (valid: {shown_tools or 'none'})"


def _has_function(env, env_type: str, name: str) -> bool:
    toolkit = env.user_tools if env_type == "user" else env.tools
    return toolkit is not None and callable(getattr(toolkit, name, None))


def load_db(env, path: str):
    """The database file `path` as the domain's DB model (`env`'s agent-side DB class).
    Raises InvalidInput naming the file and the first field of the wrong shape."""
    from pydantic import ValidationError

    db_class = type(env.tools.db)
    try:
        return db_class.load(path)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise InvalidInput(
            f"database {shown(path)} is not a {db_class.__name__}: field '{where}': {err['msg']} ({e.error_count()} problem(s))"
        ) from None
    except (OSError, ValueError) as e:
        raise InvalidInput(f"database {shown(path)} cannot be read as {db_class.__name__}: {e}") from None


def read_splits(path: str, ids: list[str]) -> dict[str, list[str]]:
    """A splits file ({split: [task ids]}, tau2's split_tasks.json format), every id one of `ids`."""
    raw = read_json(path, "splits file")
    if not isinstance(raw, dict) or not all(isinstance(v, list) for v in raw.values()):
        raise InvalidInput(f"splits file {shown(path)} must map split names to lists of task ids")
    known = set(ids)
    for split, members in raw.items():
        unknown = [str(t) for t in members if str(t) not in known]
        if unknown:
            raise InvalidInput(f"splits file {shown(path)}: split {split!r} names unknown task id {unknown[0]!r}")
    return {str(k): [str(t) for t in v] for k, v in raw.items()}


@dataclass(frozen=True)
class LoadedTaskSet:
    """A task set read and checked (see `read_task_set`)."""

    name: str
    config: TaskSetConfig
    tasks: list[Any]
    splits: dict[str, list[str]]
    db: Any  # the domain's DB model, or None: the domain's default


def base_constructor(domain: str):
    """tau2's registered environment constructor of `domain`. Raises InvalidInput naming valid domains."""
    from tau2.registry import registry

    if domain not in registry.get_domains():
        raise InvalidInput(f"unknown tau2 domain {shown(domain)}; valid: {', '.join(registry.get_domains())}")
    return registry.get_env_constructor(domain)


def read_task_set(name: str, cfg: TaskSetConfig) -> LoadedTaskSet:
    """Read and check a task set (module doc). Raises InvalidInput with the first problem."""
    constructor = base_constructor(cfg.domain)
    env = constructor()
    db = load_db(env, cfg.db) if cfg.db else None
    checked = check_tasks(read_json(cfg.tasks, f"task_sets.{name}.tasks file"), env, source=f"task_sets.{name}.tasks {cfg.tasks}")
    if checked.problems:
        more = (
            f" (and {len(checked.problems) - 1} more; `tau2-rollout validate-tasks` lists all)"
            if len(checked.problems) > 1
            else ""
        )
        raise InvalidInput(f"task set '{name}' ({cfg.tasks}): {checked.problems[0].line()}{more}")
    if not checked.tasks:
        raise InvalidInput(f"task set '{name}' ({cfg.tasks}) holds no task")
    ids = [t.id for t in checked.tasks]
    splits = read_splits(cfg.splits, ids) if cfg.splits else {}
    splits.setdefault("base", ids)
    return LoadedTaskSet(name=name, config=cfg, tasks=checked.tasks, splits=splits, db=db)


def environment_constructor(domain: str, db):
    """The constructor tau2's registry calls (`(solo_mode=False) -> Environment`): the domain's own,
    over a private copy of `db` (None: the domain's default database)."""
    constructor = base_constructor(domain)
    if db is None:
        return constructor
    if "db" not in inspect.signature(constructor).parameters:
        raise InvalidInput(f"tau2 domain '{domain}' takes no database (its environment constructor has no `db`)")

    def build(solo_mode: bool = False):
        return constructor(db=db.model_copy(deep=True), solo_mode=solo_mode)

    return build


def register_task_sets(task_sets: dict[str, TaskSetConfig]) -> None:
    """Register every task set in tau2's registry (module doc); a set already registered with the
    same definition is left as it is. Raises InvalidInput: a name tau2 already uses for something
    else, a set that does not read (see `read_task_set`)."""
    from tau2.registry import registry

    with _REGISTERING:
        for name, cfg in task_sets.items():
            _register(registry, name, cfg)


_REGISTERING = threading.RLock()  # one registration at a time: tau2's registry refuses a name twice


def _register(registry, name: str, cfg: TaskSetConfig) -> None:
    if name in registry.get_task_sets() or name in registry.get_domains():
        registered = _registered_definition(name)
        if registered == cfg:
            return
        if registered is not None:
            raise InvalidInput(
                f"task set {shown(name)} is already registered in this process from {registered.tasks} "
                f"(db {registered.db}); one name holds one definition per process: choose another name"
            )
        taken = ", ".join(sorted(set(registry.get_domains()) | set(registry.get_task_sets())))
        raise InvalidInput(
            f"task set name {shown(name)} is already a tau2 domain or task set (taken: {taken}); choose another name"
        )
    install(read_task_set(name, cfg))


def install(loaded: LoadedTaskSet) -> str:
    """Register a task set read and checked in tau2's registry (unless its name is there already);
    its name, which `load_domain` then loads."""
    from tau2.registry import registry

    with _REGISTERING:
        if loaded.name not in registry.get_task_sets():
            registry.register_domain(environment_constructor(loaded.config.domain, loaded.db), loaded.name)
            registry.register_tasks(_tasks_loader(loaded), loaded.name, get_task_splits=functools.partial(dict, loaded.splits))
    return loaded.name


def _tasks_loader(loaded: LoadedTaskSet):
    def get_tasks(task_split_name: Optional[str] = None) -> list:
        if task_split_name is None:
            return list(loaded.tasks)
        members = set(loaded.splits[task_split_name])
        return [t for t in loaded.tasks if t.id in members]

    get_tasks.rollout_task_set = loaded.config  # the definition it was registered from
    return get_tasks


def _registered_definition(name: str) -> Optional[TaskSetConfig]:
    from tau2.registry import registry

    try:
        loader = registry.get_tasks_loader(name)
    except KeyError:
        return None
    return getattr(loader, "rollout_task_set", None)


def registered_task_sets() -> dict[str, TaskSetConfig]:
    """The task sets this project registered in this process (name -> definition)."""
    from tau2.registry import registry

    out = {}
    for name in registry.get_task_sets():
        definition = _registered_definition(name)
        if definition is not None:
            out[name] = definition
    return out
