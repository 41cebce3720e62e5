"""The checks of a pool request's fields, made in the driver when it is submitted.

`request_problem(r)` and `endpoint_problem(e)` give one line naming the first bad field, its
value's type (never the value of a header or body field: keys may sit there) and what is
valid; None when the request can be sent. A request that passes can be pickled to a worker;
an `Endpoint` that passes has an http(s) URL with a host, headers HTTP can carry, and an
`extra_body` that leaves the fields the episode owns (the conversation, the tools, the model,
streaming, the token-capture options of `llm.capture`) to the episode.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any, Optional
from urllib.parse import urlsplit

from rollout.core.failures import InvalidInput

# Request fields the episode sets itself: an `extra_body` that replaced them would change what
# the episode is (another conversation, another model) or how its answer is read (streamed).
OWNED_BODY_FIELDS = (
    "model",
    "messages",
    "tools",
    "stream",
    "stream_options",
    "n",
    "logprobs",
    "top_logprobs",
    "return_token_ids",
    "return_tokens_as_token_ids",
)
log = logging.getLogger(__name__)
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token
SEED_MAX = 2**63 - 1


def _integer(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def base_url_problem(url: Any, field: str = "Endpoint.base_url") -> Optional[str]:
    """Why `url` cannot be a policy endpoint's base URL (None: it can)."""
    if not isinstance(url, str):
        return f"{field} is {type(url).__name__}: valid: an http(s) URL such as http://host:8000/v1"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{field}={url!r} is not an http(s) URL with a host: valid: e.g. http://host:8000/v1"
    return None


def endpoint_problem(e: Any) -> Optional[str]:
    """The first problem of an `Endpoint` (see module doc), or None."""
    problem = base_url_problem(e.base_url)
    if problem:
        return problem
    if e.model is not None and (not isinstance(e.model, str) or not e.model):
        return f"Endpoint.model is {type(e.model).__name__}: valid: a non-empty model name, or None (the config's)"
    if not isinstance(e.headers, dict):
        return f"Endpoint.headers is {type(e.headers).__name__}: valid: a dict of header name to string value"
    for name, value in e.headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            return "Endpoint.headers has a name that is not an HTTP header name: valid: letters, digits and -"
        if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            return (
                f"Endpoint.headers['{name}'] is not a one-line string (a line break or NUL, or a "
                f"{type(value).__name__}): valid: a string without CR, LF or NUL (the value is not shown)"
            )
    if not isinstance(e.extra_body, dict):
        return f"Endpoint.extra_body is {type(e.extra_body).__name__}: valid: a dict of request fields"
    if not all(isinstance(k, str) for k in e.extra_body):
        return "Endpoint.extra_body has a key that is not a string: valid: request field names"
    owned = [k for k in e.extra_body if k in OWNED_BODY_FIELDS]
    if owned:
        return (
            f"Endpoint.extra_body sets {', '.join(owned)}, which the episode sets itself: valid: sampling and server "
            f"options (temperature, top_p, max_tokens, stop, ...); token capture is llm.capture"
        )
    return None


def request_problem(r: Any) -> Optional[str]:
    """The first problem of a `RolloutRequest`'s fields (see module doc), or None."""
    from rollout.pool.requests import Endpoint

    if not isinstance(r.domain, str) or not r.domain:
        return f"RolloutRequest.domain is {type(r.domain).__name__}: valid: a domain name such as 'airline'"
    if not isinstance(r.task_id, (str, int)) or isinstance(r.task_id, bool):
        return f"RolloutRequest.task_id is {type(r.task_id).__name__}: valid: the task's id (a string)"
    if not _integer(r.sample) or r.sample < 0:
        return f"RolloutRequest.sample={r.sample!r}: valid: an integer >= 0"
    if r.seed is not None and (not _integer(r.seed) or not 0 <= r.seed <= SEED_MAX):
        return f"RolloutRequest.seed={r.seed!r}: valid: an integer in 0..2**63-1, or None (derived from the request)"
    if r.solo is not None and not isinstance(r.solo, bool):
        return f"RolloutRequest.solo={r.solo!r}: valid: True, False or None (decided by the config)"
    if r.weight_version is not None and not _integer(r.weight_version):
        return f"RolloutRequest.weight_version={r.weight_version!r}: valid: an integer, or None"
    if r.group_id is not None and (not isinstance(r.group_id, str) or not r.group_id):
        return f"RolloutRequest.group_id is {type(r.group_id).__name__}: valid: a non-empty string, or None"
    if r.policy is not None:
        if not isinstance(r.policy, Endpoint):
            return (
                f"RolloutRequest.policy is {type(r.policy).__name__}: valid: an Endpoint(base_url, ...), or None "
                f"(the config's llm)"
            )
        problem = endpoint_problem(r.policy)
        if problem:
            return problem
    if not isinstance(r.tags, dict):
        return f"RolloutRequest.tags is {type(r.tags).__name__}: valid: a dict"
    return _pickle_problem(r)


def check_requests(requests: Iterable[Any], cfg: Any, base_seed: int) -> list:
    """The requests as `ValidRequest`s: each `RolloutRequest` checked (`request_problem`, then its
    episode against its domain and `cfg`: `check_episode`, once), each `ValidRequest` as it is.
    InvalidInput naming the first bad one. Warns when requests repeat one seed (see pool.py)."""
    from rollout.agent.episode import check_episode
    from rollout.pool.requests import RolloutRequest, ValidRequest

    out, checked = [], []
    for i, r in enumerate(requests):
        if isinstance(r, ValidRequest):
            out.append(r)
            continue
        if not isinstance(r, RolloutRequest):
            raise InvalidInput(f"requests must be RolloutRequest objects, got {type(r).__name__}")
        problem = request_problem(r)
        if problem:
            raise InvalidInput(f"request {i}: {problem}")
        try:
            out.append(ValidRequest(r, check_episode(r.spec(base_seed), cfg)))
        except InvalidInput as e:
            raise InvalidInput(f"request {i}: {e.failure.message}") from None
        checked.append(r)
    repeated = Counter((r.domain, str(r.task_id), r.sample) for r in checked if r.seed is None)
    repeated = {k: n for k, n in repeated.items() if n > 1}
    if repeated:
        (domain, task_id, sample), n = next(iter(repeated.items()))
        log.warning(
            "%d requests repeat another's domain, task_id and sample with no seed (e.g. %s/%s sample %s x%d): they "
            "sample with one seed; give each its own `sample` (or `seed`) for distinct samples",
            sum(repeated.values()) - len(repeated),
            domain,
            task_id,
            sample,
            n,
        )
    return out


def _pickle_problem(r: Any) -> Optional[str]:
    """Why the request cannot be sent to a worker (Ray pickles it), naming the field only."""
    import ray.cloudpickle as cloudpickle

    for name in ("tags", "policy"):
        try:
            cloudpickle.dumps(getattr(r, name))
        except Exception as e:
            return f"RolloutRequest.{name} cannot be sent to a worker ({type(e).__name__} when pickled): valid: plain data"
    return None
