"""TAU2 domains: tasks, splits, policies, tool schemas and DB templates, loaded once per process.

`load_domain(name)` reads a domain's task file, database and policy once (cached for the
life of the process; the cached objects are never mutated) and hands each episode a fresh
environment whose databases are private copy-on-write copies of the templates (see
cow_db.py). Building one reads no file: it is tau2's own environment (same class, policy
and toolkits, `sync_tools` run) over the copies. It also registers that environment constructor in tau2's registry under
`rollout/<name>`, so tau2's own evaluator builds its environments the same fast way.
"""

from __future__ import annotations

import copy
import functools
import threading
from dataclasses import dataclass, field
from typing import Any, Optional

from rollout.core.config import shown
from rollout.core.failures import InvalidInput
from rollout.env.cow_db import TemplateJson, cow_copy, fast_db_hash, template_json

DOMAINS = ("airline", "retail", "telecom", "mock")
BENCHMARK_DOMAINS = tuple(d for d in DOMAINS if d != "mock")  # tau2-bench's domains; mock is tau2's test domain
DEFAULT_SPLIT = "base"


@dataclass(frozen=True)
class DomainAssets:
    """Read-only per-process data of one domain. Never mutate the fields."""

    name: str
    tasks: dict[str, Any]  # task id -> tau2 Task, every task in the domain's task file
    splits: dict[str, list[str]]  # split name -> task ids
    supports_solo: bool
    evaluation_domain: str  # the name tau2's evaluator builds this domain's environments by
    _templates: dict[bool, Any] = field(repr=False)  # solo -> tau2's own environment, built once
    _db: Any = field(repr=False)
    _user_db: Any = field(repr=False)
    _db_json: Any = field(repr=False)
    _user_db_json: Any = field(repr=False)

    def task(self, task_id: str | int):
        """The tau2 Task with this id. Raises InvalidInput naming valid ids."""
        key = str(task_id)
        if key not in self.tasks:
            ids = list(self.splits.get(DEFAULT_SPLIT) or self.tasks)
            sample = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
            raise InvalidInput(
                f"unknown task_id {shown(key)} for domain '{self.name}'; "
                f"{len(self.tasks)} tasks exist (e.g. {sample}); list them with "
                f"`tau2-rollout episode --domain {self.name} --list`"
            )
        return self.tasks[key]

    def task_ids(self, split: str = DEFAULT_SPLIT) -> list[str]:
        """Task ids of a split, in tau2's order. Raises InvalidInput for an unknown split."""
        if split not in self.splits:
            raise InvalidInput(
                f"unknown split {shown(split)} for domain '{self.name}'; valid splits: {', '.join(sorted(self.splits))}"
            )
        return list(self.splits[split])

    def new_environment(self, solo: bool = False):
        """A fresh tau2 Environment over private (copy-on-write) copies of the domain's databases."""
        template = self._templates[solo]
        env = copy.copy(template)  # domain name, policy and solo flag are shared strings
        env.tools = type(template.tools)(cow_copy(self._db, self._db_json.record_fields))
        _use_fast_hash(env.tools, self._db_json)
        if template.user_tools is not None:
            env.user_tools = type(template.user_tools)(cow_copy(self._user_db, self._user_db_json.record_fields))
            _use_fast_hash(env.user_tools, self._user_db_json)
        env.sync_tools()  # what tau2's Environment.__init__ does after setting the toolkits
        return env

    def check_solo(self, task) -> None:
        """Raise InvalidInput unless `task` can run in solo mode (tau2's LLMSoloAgent rule)."""
        from tau2.agent.llm_agent import LLMSoloAgent

        if not self.supports_solo:
            raise InvalidInput(
                f"domain '{self.name}' does not support solo mode; configure a user simulator "
                f"(user_llm.base_url / user_llm.model, or TAU2_USER_LLM_API_BASE / TAU2_USER_LLM)"
            )
        if not LLMSoloAgent.check_valid_task(task) or task.ticket is None:
            raise InvalidInput(
                f"task '{task.id}' of domain '{self.name}' cannot run solo: {_why_not_solo(task)} (tau2's "
                f"LLMSoloAgent.check_valid_task); configure a user simulator"
            )


def _why_not_solo(task) -> str:
    """Which of tau2's solo rules `task` breaks (LLMSoloAgent.check_valid_task, plus a ticket)."""
    history = task.initial_state.message_history if task.initial_state is not None else None
    if any(getattr(m, "role", None) == "user" for m in history or []):
        return "its message history has user turns"
    if any(getattr(m, "role", None) == "assistant" and not m.is_tool_call() for m in history or []):
        return "its message history has assistant text"
    if task.ticket is None:
        return "it has no ticket"
    if task.evaluation_criteria is None:
        return "it has no evaluation criteria"
    if not task.evaluation_criteria.actions:
        return "it has no expected actions"
    return "tau2 refuses it"


def check_domain(name: str) -> str:
    if name not in DOMAINS:
        raise InvalidInput(f"unknown domain {shown(name)}; valid domains: {', '.join(DOMAINS)}")
    return name


def load_domain(name: str) -> DomainAssets:
    """Load (once per process) a domain's tasks, splits and database templates. Thread-safe:
    concurrent first calls (the scripted server's threads, workers' warm-up) load once."""
    check_domain(name)
    with _LOADING:
        return _load_domain(name)


_LOADING = threading.Lock()


@functools.cache
def _load_domain(name: str) -> DomainAssets:
    from tau2.registry import registry

    constructor = registry.get_env_constructor(name)
    tasks = registry.get_tasks_loader(name)(None)
    splits = _load_splits(name)
    if DEFAULT_SPLIT not in splits:
        splits[DEFAULT_SPLIT] = [t.id for t in tasks]
    env = constructor()
    user_db = env.user_tools.db if env.user_tools is not None else None
    templates = {False: env}
    try:
        templates[True] = constructor(solo_mode=True)
    except ValueError:
        pass
    assets = DomainAssets(
        name=name,
        tasks={t.id: t for t in tasks},
        splits=splits,
        supports_solo=True in templates,
        evaluation_domain=f"rollout/{name}",
        _templates=templates,
        _db=env.tools.db,
        _user_db=user_db,
        _db_json=template_json(env.tools.db),
        _user_db_json=template_json(user_db) if user_db is not None else TemplateJson({}),
    )
    # tau2's evaluate_simulation builds its two environments through the registry: register
    # ours (same environments, copy-on-write over the warm templates) under a name of our own.
    registry.register_domain(lambda solo_mode=False: assets.new_environment(solo_mode), assets.evaluation_domain)
    return assets


def _use_fast_hash(toolkit, cached: dict) -> None:
    """This toolkit's DB hash, computed by cow_db.fast_db_hash (equal to tau2's, faster)."""
    toolkit.get_db_hash = lambda: fast_db_hash(toolkit.db, cached)


def _load_splits(name: str) -> dict[str, list[str]]:
    from tau2.registry import registry

    try:
        getter: Optional[Any] = registry.get_task_splits_loader(name)
    except (KeyError, ValueError):
        getter = None
    if getter is None:  # mock registers no split loader, but its module has one
        import importlib

        module = importlib.import_module(f"tau2.domains.{name}.environment")
        getter = getattr(module, "get_tasks_split", None)
    return dict(getter()) if getter else {}
