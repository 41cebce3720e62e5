"""Copy-on-write databases: same contents and same hash as tau2's own, template never touched."""

import pytest
from tau2.registry import registry
from tau2.utils.utils import get_dict_hash

from rollout.env.cow_db import CowDict
from rollout.env.domains import load_domain


@pytest.mark.parametrize("domain", ["airline", "retail", "telecom", "mock"])
def test_fresh_environment_equals_tau2s(domain):
    ours = load_domain(domain).new_environment(False)
    theirs = registry.get_env_constructor(domain)()
    assert ours.tools.db.model_dump() == theirs.tools.db.model_dump()
    assert ours.get_db_hash() == theirs.get_db_hash() == get_dict_hash(theirs.tools.db.model_dump())
    if theirs.user_tools is not None:
        assert ours.get_user_db_hash() == theirs.get_user_db_hash()


def test_writes_stay_in_the_copy_and_hash_like_tau2():
    assets = load_domain("airline")
    template_hash = get_dict_hash(assets._db.model_dump())
    env = assets.new_environment(False)
    reservations = env.tools.db.reservations
    assert isinstance(reservations, CowDict)
    rid = next(iter(reservations))
    reservations[rid].cabin = "business" if reservations[rid].cabin != "business" else "economy"
    user = env.tools.db.users.get(reservations[rid].user_id)
    user.reservations.append("NEWRES")
    del reservations[next(k for k in reservations if k != rid)]
    for flight in env.tools.db.flights.values():
        flight.origin = flight.origin  # read-through every record
    assert env.get_db_hash() == get_dict_hash(env.tools.db.model_dump())
    assert env.get_db_hash() != template_hash
    assert get_dict_hash(assets._db.model_dump()) == template_hash  # the shared template is untouched


def _first_last_middle(keys):
    keys = sorted(keys)
    return keys[0], keys[len(keys) // 2], keys[-1]


@pytest.mark.parametrize("domain", ["airline", "retail", "mock"])
def test_hash_after_every_kind_of_change_equals_tau2s(domain):
    """Modified, added (before, between and after the template's keys), removed (first,
    middle, last) and re-added records: fast_db_hash streams template bytes around them."""
    assets = load_domain(domain)
    for change in ("none", "modify", "add", "remove", "remove_add", "all"):
        env = assets.new_environment(False)
        db = env.tools.db
        for name in sorted(assets._db_json.tables):
            table = getattr(db, name)
            first, middle, last = _first_last_middle(dict.keys(table))
            record = table[middle]
            if change in ("modify", "all"):
                table[first]  # taken by key but unchanged: serialised, same bytes
                getattr(db, name)[last] = record.model_copy(deep=True)  # replaced by another record
            if change in ("add", "all"):
                for key in ("", middle + "0", "~~~"):  # sorts before all, right after middle, after all
                    table[key] = record.model_copy(deep=True)
            if change in ("remove", "remove_add", "all"):
                for key in {first, middle, last}:
                    table.pop(key)
            if change == "remove_add":
                table[middle] = record
            assert env.get_db_hash() == get_dict_hash(db.model_dump()), (domain, name, change)


def test_environment_is_tau2s_own_without_reading_files(monkeypatch):
    """A new environment has tau2's class, policy and toolkits and opens no file."""
    import builtins

    for domain in ("airline", "retail", "telecom", "mock"):
        assets = load_domain(domain)
        for solo in (False, True) if assets.supports_solo else (False,):
            theirs = registry.get_env_constructor(domain)(solo_mode=solo)
            with monkeypatch.context() as m:
                m.setattr(builtins, "open", lambda *a, **k: pytest.fail(f"opened {a[0]}"))
                ours = assets.new_environment(solo)
            assert type(ours) is type(theirs) and type(ours.tools) is type(theirs.tools)
            assert (ours.domain_name, ours.policy, ours.solo_mode) == (theirs.domain_name, theirs.policy, theirs.solo_mode)
            assert [t.openai_schema for t in ours.get_tools()] == [t.openai_schema for t in theirs.get_tools()]
            assert ours.get_db_hash() == theirs.get_db_hash()
            if theirs.user_tools is not None:
                assert ours.get_user_db_hash() == theirs.get_user_db_hash()
                assert ours.user_tools.db.model_dump() == theirs.user_tools.db.model_dump()  # sync_tools ran


@pytest.mark.parametrize("domain", ["airline", "retail", "telecom", "mock"])
def test_record_copy_is_an_equal_deep_copy(domain):
    """record_copy (the copy taken on first access) equals model_copy(deep=True) on every record
    and shares no mutable object with the template's record."""
    from rollout.env.cow_db import record_copy, record_fields

    assets = load_domain(domain)
    dbs = [assets._db] + ([assets._user_db] if assets._user_db is not None else [])
    checked = 0
    for db in dbs:
        for name in record_fields(db):
            for record in getattr(db, name).values():
                copy_ = record_copy(record)
                assert copy_ == record.model_copy(deep=True) and copy_.model_dump_json() == record.model_dump_json()
                assert not _shared_mutables(copy_, record)
                checked += 1
    assert checked or domain == "telecom"


def _shared_mutables(a, b) -> list:
    from pydantic import BaseModel

    if isinstance(a, BaseModel):
        return [s for f in type(a).model_fields for s in _shared_mutables(getattr(a, f), getattr(b, f))] + ([a] if a is b else [])
    if isinstance(a, (list, dict)):
        inner = zip(a.values(), b.values()) if isinstance(a, dict) else zip(a, b)
        return ([a] if a is b else []) + [s for x, y in inner for s in _shared_mutables(x, y)]
    return []


@pytest.mark.parametrize("domain", ["airline", "retail"])
def test_hash_resumed_at_the_first_change_equals_tau2s(domain):
    """A copy's hash resumes from the template's saved state at its first changed record: one
    record replaced at every kind of position (first, next to a saved state, middle, last) of
    every table, and two changes in two tables, hash as tau2's."""
    from rollout.env.cow_db import _pieces

    assets = load_domain(domain)
    template = assets._db_json
    for name, t in sorted(template.tables.items()):
        saved = template.states[id(t)][0]
        n = len(t.keys)
        for i in sorted({0, 1, saved[1] - 1, saved[1], saved[1] + 1, n // 2, n - 1} & set(range(n))):
            env = assets.new_environment(False)
            table = getattr(env.tools.db, name)
            table[t.keys[i]] = dict.__getitem__(table, t.keys[(i + 1) % n]).model_copy(deep=True)
            assert env.get_db_hash() == get_dict_hash(env.tools.db.model_dump()), (domain, name, i)
    env = assets.new_environment(False)
    for name in sorted(template.tables)[-2:]:
        table, keys = getattr(env.tools.db, name), template.tables[name].keys
        table[keys[len(keys) // 3]] = dict.__getitem__(table, keys[0]).model_copy(deep=True)
    assert env.get_db_hash() == get_dict_hash(env.tools.db.model_dump())
    read_only = assets.new_environment(False)
    for name, t in template.tables.items():
        getattr(read_only.tools.db, name)[t.keys[len(t.keys) // 2]]  # taken by key, left as it was
    assert _pieces(read_only.tools.db, template.tables) == template.stream  # no change: the template's own text
    assert read_only.get_db_hash() == template.digest == get_dict_hash(assets._db.model_dump())
