"""TAU2 domains: tasks, splits, policies, tool schemas and DB templates, loaded once per process.

A domain name is any name tau2's registry knows: its domains (airline, retail, telecom,
telecom-workflow, mock, and any a user's package registers), its task sets (telecom_full,
telecom_small: run on the domain their name starts with) and this project's task sets
(task_sets.py registers them there). `known_domains()` lists them.

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
import inspect
import threading
from dataclasses import dataclass, field
from typing import Any, Optional

from rollout.core.config import shown
from rollout.core.failures import InvalidInput
from rollout.env.cow_db import TemplateJson, cow_copy, fast_db_hash, template_json

DOMAINS = ("airline", "retail", "telecom", "mock")  # the default sweep's domains; any registered name runs
BENCHMARK_DOMAINS = tuple(d for d in DOMAINS if d != "mock")  # tau2-bench's domains; mock is tau2's test domain
DEFAULT_SPLIT = "base"


@dataclass(frozen=True)
class DomainAssets:
    """Read-only per-process data of one domain. Never mutate the fields."""

    name: str
    domain: str  # the tau2 domain of its environment (the name itself for tau2's domains; a task set's domain)
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


def known_domains() -> list[str]:
    """Every name `load_domain` accepts: tau2's registered domains and task sets, the default
    sweep's domains first, then the others in registry order."""
    from tau2.registry import registry

    names = list(registry.get_domains()) + list(registry.get_task_sets())
    names = [n for n in dict.fromkeys(names) if n in registry.get_task_sets() and environment_name(n) is not None]
    return [d for d in DOMAINS if d in names] + [n for n in names if n not in DOMAINS]


def environment_name(name: str) -> Optional[str]:
    """The registered tau2 domain whose environment a name runs on: the name itself when tau2
    registers a domain of that name, else the longest registered domain its name starts with,
    followed by `_` or `-` (telecom_full: telecom). None when there is none."""
    from tau2.registry import registry

    domains = registry.get_domains()
    if name in domains:
        return name
    prefixes = [d for d in domains if name.startswith((f"{d}_", f"{d}-"))]
    return max(prefixes, key=len) if prefixes else None


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
    """`name` if `load_domain` can load it. Raises InvalidInput naming the valid names."""
    from tau2.registry import registry

    if not isinstance(name, str) or name not in registry.get_task_sets() or environment_name(name) is None:
        raise InvalidInput(
            f"unknown domain {shown(name)}; valid domains: {', '.join(known_domains())} "
            f"(or a task set declared under task_sets: docs/tasks.md)"
        )
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

    constructor = registry.get_env_constructor(environment_name(name))
    tasks = _all_tasks(registry.get_tasks_loader(name))
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
        domain=env.get_domain_name(),
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


def _all_tasks(loader) -> list:
    """Every task of a registered task set: its loader with no split (None) when it takes one."""
    return loader(None) if inspect.signature(loader).parameters else loader()


def _load_splits(name: str) -> dict[str, list[str]]:
    from tau2.registry import registry

    try:
        getter: Optional[Any] = registry.get_task_splits_loader(name)
    except (KeyError, ValueError):
        getter = None
    if getter is None and name == "mock":  # mock registers no split loader, but its module has one
        import importlib

        module = importlib.import_module(f"tau2.domains.{name}.environment")
        getter = getattr(module, "get_tasks_split", None)
    return dict(getter()) if getter else {}
