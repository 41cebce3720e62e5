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
