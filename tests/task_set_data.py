"""A task set built from tau2's own airline tasks: new ids, a changed database and broken tasks.

`build(dir)` writes, from tau2's shipped files only:

- `db.json`: airline's database with one user's email changed (`CHANGED_EMAIL`, read by task
  `set-5`'s gold `get_user_details`) and one reservation (`REMOVED_RESERVATION`) deleted;
- `valid.json`: airline tasks 2, 5, 7, 11 and 12 under new ids `set-<id>` (their gold actions do
  not touch the deleted reservation), each valid over `db.json`;
- `all.json`: the valid tasks plus one task per way of being broken (`BROKEN`: id -> status,
  field), in file order; the duplicate is a second `set-5`.
"""

from __future__ import annotations

import json
from pathlib import Path

VALID_IDS = ["set-2", "set-5", "set-7", "set-11", "set-12"]
CHANGED_USER = "mei_brown_7075"  # task 5's user
CHANGED_EMAIL = "mei.changed@example.com"
REMOVED_RESERVATION = "NQNU5R"  # task 9 cancels it
SET_NAME = "my_airline"

# file position -> (id, status, field) of each broken task in all.json
BROKEN = {
    5: ("bad-schema", "schema_error", "user_scenario"),
    6: ("bad-tool", "unknown_tool", "evaluation_criteria.actions.0.name"),
    7: ("set-5", "duplicate_id", "id"),
    8: ("bad-action", "gold_action_failed", "evaluation_criteria.actions.0"),
    9: ("bad-reward", "gold_reward_below_1", "COMMUNICATE"),
}


def _task(tasks: dict, tau2_id: str, new_id: str) -> dict:
    d = tasks[tau2_id].model_dump(mode="json")
    d["id"] = new_id
    return d


def build(out: Path) -> dict[str, Path]:
    """Write the files (module doc) into `out`; their paths by name."""
    from tau2.domains.airline.environment import AIRLINE_DB_PATH
    from tau2.registry import registry

    tasks = {t.id: t for t in registry.get_tasks_loader("airline")("base")}
    valid = [_task(tasks, i.removeprefix("set-"), i) for i in VALID_IDS]

    schema = _task(tasks, "5", "bad-schema")
    del schema["user_scenario"]
    tool = _task(tasks, "2", "bad-tool")
    tool["evaluation_criteria"]["actions"][0]["name"] = "teleport_passenger"
    duplicate = _task(tasks, "5", "set-5")
    action = _task(tasks, "9", "bad-action")  # its gold cancel_reservation names the deleted reservation
    reward = _task(tasks, "11", "bad-reward")
    reward["evaluation_criteria"]["communicate_info"] = ["5,244"]  # tau2 strips commas from what the agent says

    db = json.loads(Path(AIRLINE_DB_PATH).read_text())
    db["users"][CHANGED_USER]["email"] = CHANGED_EMAIL
    del db["reservations"][REMOVED_RESERVATION]
    for user in db["users"].values():
        if REMOVED_RESERVATION in user["reservations"]:
            user["reservations"].remove(REMOVED_RESERVATION)

    out.mkdir(parents=True, exist_ok=True)
    paths = {"db": out / "db.json", "valid": out / "valid.json", "all": out / "all.json"}
    paths["db"].write_text(json.dumps(db))
    paths["valid"].write_text(json.dumps(valid))
    paths["all"].write_text(json.dumps([*valid, schema, tool, duplicate, action, reward]))
    return paths


def task_set_overrides(paths: dict[str, Path], name: str = SET_NAME) -> list[str]:
    """The key=value overrides declaring the valid tasks over the changed database as `name`."""
    return [f"task_sets.{name}.domain=airline", f"task_sets.{name}.tasks={paths['valid']}", f"task_sets.{name}.db={paths['db']}"]
