"""The bench's aiohttp transport (the end-to-end A/B against fast_http): what the clients need of it."""

import asyncio

import pytest

from rollout.bench.aiohttp_transport import AiohttpJsonClient, http_transport
from rollout.core import clients
from rollout.core.fast_http import EndpointError, JsonHttpClient, retry
from tests.unit.test_fast_http import Server, answer, echo

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _quick_backoff(monkeypatch):
    monkeypatch.setattr(retry, "INITIAL_BACKOFF_S", 0.001)
    for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)


def client(url: str, **kwargs) -> AiohttpJsonClient:
    return AiohttpJsonClient(
        url, **{"headers": {"Authorization": "Bearer sk-test"}, "timeout_s": 5.0, "max_retries": 0, **kwargs}
    )


def test_json_round_trip_on_one_kept_connection_with_the_clients_headers():
    async def main():
        async with Server() as server:
            c = client(server.url())
            first = await c.post_json("/chat/completions", {"a": 1}, {"X-Extra": "1"})
            second = await c.post_json("/chat/completions", {"a": 2})
            await c.aclose()
            return server, first, second

    server, first, second = asyncio.run(main())
    assert first == {"path": "/v1/chat/completions", "body": {"a": 1}, "conn": 0} and second["conn"] == 0
    assert server.requests[0].header("authorization") == ["Bearer sk-test"] and server.requests[0].header("x-extra") == ["1"]
    assert server.requests[1].header("x-extra") == []


def test_retry_after_is_honoured_and_a_4xx_is_not_retried(monkeypatch):
    monkeypatch.setattr(retry, "backoff_s", lambda attempt: pytest.fail("backoff used instead of Retry-After"))
    replies = iter([answer(503, b'{"error": {"message": "busy"}}', headers=("Retry-After: 0.01",)), answer()])

    async def main():
        async with Server(lambda request: next(replies)) as server:
            c = client(server.url(), max_retries=1)
            ok = await c.post_json("/x", {})
            await c.aclose()
        async with Server(lambda request: answer(404, b'{"error": {"message": "no such model"}}')) as server:
            c = client(server.url(), max_retries=3)
            with pytest.raises(EndpointError, match="HTTP 404: no such model") as caught:
                await c.post_json("/x", {})
            await c.aclose()
            return ok, caught.value.status, len(server.requests)

    assert asyncio.run(main()) == ({"ok": True}, 404, 1)


def test_a_request_cut_off_on_a_kept_connection_is_sent_once_more():
    cut = []

    def handler(request):
        if request.index == 1 and not cut:  # the second request on the first connection: closed unanswered
            cut.append(request)
            return None
        return echo(request)

    async def main():
        async with Server(handler) as server:
            c = client(server.url())
            await c.post_json("/a", {})
            again = await c.post_json("/b", {"n": 2})
            await c.aclose()
            return again

    assert asyncio.run(main())["body"] == {"n": 2} and len(cut) == 1


def test_a_header_value_with_a_newline_is_refused_without_showing_it():
    with pytest.raises(ValueError, match="control character") as caught:
        client("http://127.0.0.1:9/v1", headers={"Authorization": "Bearer sk-secret\r\nX-Injected: 1"})
    assert "sk-secret" not in str(caught.value)


def test_the_clients_built_inside_the_block_use_it():
    with http_transport("aiohttp"):
        inside = clients.make_client(clients.EndpointConfig(base_url="http://127.0.0.1:9/v1"))
    outside = clients.make_client(clients.EndpointConfig(base_url="http://127.0.0.1:9/v1"))
    assert type(inside._http) is AiohttpJsonClient and type(outside._http) is JsonHttpClient
    with pytest.raises(ValueError, match="valid: fast_http, aiohttp"):
        with http_transport("curl"):
            pass


def test_the_gate_is_awaited_before_the_request_is_sent():
    async def main():
        async with Server() as server:
            seen = []

            async def gate():
                seen.append(len(server.requests))

            c = client(server.url(), max_concurrency=1)
            await c.post_json("/x", {}, gate=gate)
            await c.aclose()
            return seen, len(server.requests)

    assert asyncio.run(main()) == ([0], 1)


def test_a_ray_started_inside_ray_transport_gives_its_workers_the_hook(monkeypatch):
    """Ray calls the function RAY_RUNTIME_ENV_HOOK names at `ray.init`; it adds the setup hook
    that makes a worker's clients use aiohttp. Outside the block, and for fast_http, nothing."""
    import importlib
    import os

    from rollout.bench import aiohttp_transport

    def load(path):
        module, _, name = path.rpartition(".")
        return getattr(importlib.import_module(module), name)

    monkeypatch.delenv("RAY_RUNTIME_ENV_HOOK", raising=False)
    with aiohttp_transport.ray_transport("fast_http"):
        assert "RAY_RUNTIME_ENV_HOOK" not in os.environ
    with aiohttp_transport.ray_transport("aiohttp"):
        env = load(os.environ["RAY_RUNTIME_ENV_HOOK"])({"env_vars": {"A": "1"}})
    assert "RAY_RUNTIME_ENV_HOOK" not in os.environ and env["env_vars"] == {"A": "1"}
    monkeypatch.setattr(clients, "JsonHttpClient", JsonHttpClient)
    load(env["worker_process_setup_hook"])()  # what the worker runs at its start
    assert clients.JsonHttpClient is AiohttpJsonClient
