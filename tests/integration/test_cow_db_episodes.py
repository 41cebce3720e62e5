"""Copy-on-write databases under real episodes: the shared templates are never touched."""

from tau2.utils.utils import get_dict_hash

from rollout.env.domains import load_domain
from tests.helpers import run_domain, scripted_config


def test_templates_unchanged_after_many_episodes(oracle_server):
    hashes = {d: get_dict_hash(load_domain(d)._db.model_dump()) for d in ("airline", "retail")}
    for domain in hashes:
        results = run_domain(scripted_config(oracle_server), domain, load_domain(domain).task_ids("base")[:15], solo=False)
        assert all(r.reward == 1.0 for r in results)
    assert {d: get_dict_hash(load_domain(d)._db.model_dump()) for d in hashes} == hashes
