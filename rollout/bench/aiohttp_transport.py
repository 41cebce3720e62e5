"""aiohttp as the HTTP transport of the chat-completions clients, for the bench's end-to-end A/B.

`AiohttpJsonClient` has `rollout.core.fast_http.JsonHttpClient`'s interface (the same
constructor; `post_json`, `get_json`, `aclose`) over an `aiohttp.ClientSession`, with the same
retries (`with_retries`: Retry-After, backoff, what is retried), header checks (a bad value is
refused without being shown), proxies read from the environment as fast_http reads them
(`http://` proxies, NO_PROXY with networks), TLS settings and endpoint cap; a request the server
cuts off before answering is sent once more.

`http_transport(name)` makes the clients built inside the block use it, in this process;
`ray_transport(name)` makes the clients of the pool workers of a Ray started inside the block
(by the pool) use it: Ray's RAY_RUNTIME_ENV_HOOK adds `use_aiohttp` as the workers' setup hook.
The product's clients always use fast_http: docs/performance.md (P2, P7) has the end-to-end
comparison.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Optional, Union

import aiohttp
import yarl

from rollout.core import clients
from rollout.core.clock import current as episode_clock
from rollout.core.fast_http import EndpointError, JsonHttpClient, with_retries
from rollout.core.fast_http.client import _ssl_context, split_base_url
from rollout.core.fast_http.proxy import env_proxy
from rollout.core.fast_http.wire import merge_headers, quoted_path

TRANSPORTS = ("fast_http", "aiohttp")
RAY_HOOK_VARIABLE = "RAY_RUNTIME_ENV_HOOK"
CONNECTION_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, aiohttp.ClientResponseError, OSError)


class AiohttpJsonClient:
    """Keep-alive JSON client for one endpoint over aiohttp (see module doc). Use from one
    event loop at a time; a new event loop gets a new session."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: dict[str, str],
        timeout_s: float,
        max_retries: int = 2,
        max_concurrency: int = 0,
        verify: Union[bool, str, os.PathLike, ssl.SSLContext] = True,
        trust_env: bool = True,
    ):
        parts, self._host, port, path = split_base_url(base_url)
        self._ssl = _ssl_context(verify) if parts.scheme == "https" else False
        self._base = f"{parts.scheme}://{parts.netloc}{path}"
        proxy, _ = env_proxy(parts.scheme, self._host, port) if trust_env else (None, "")
        self._proxy = f"http://{proxy[0]}:{proxy[1]}" if proxy else None
        self._proxy_headers = {"Proxy-Authorization": proxy[2]} if proxy and proxy[2] else None
        self._headers = merge_headers({"accept": ("Accept", "application/json")}, headers)
        self._get = dict(self._headers.values())
        self._post = {**self._get, "Content-Type": "application/json"}
        self._timeout_s = timeout_s
        self._max_retries = max_retries
        self._max_concurrency = max_concurrency
        self._urls: dict[str, yarl.URL] = {}
        self._session: Optional[aiohttp.ClientSession] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._sem: Optional[asyncio.Semaphore] = None

    async def post_json(
        self,
        path: str,
        body: Any,
        headers: Optional[dict[str, str]] = None,
        timeout_s: Optional[float] = None,
        gate: Optional[Callable[[], Awaitable[None]]] = None,
    ) -> Any:
        """POST `body` as JSON to base_url + path; the decoded JSON answer. Raises EndpointError.
        `gate`, when given, is awaited once the request holds its slot under the cap, just
        before it is sent."""
        data = json.dumps(body, separators=(",", ":")).encode()
        head = self._post
        if headers:
            merged = merge_headers(self._headers, headers)
            merged["content-type"] = ("Content-Type", "application/json")
            head = dict(merged.values())
        return await self._send("POST", path, head, data, timeout_s, gate)

    async def get_json(self, path: str, timeout_s: Optional[float] = None) -> Any:
        """GET base_url + path; the decoded JSON answer. Raises EndpointError."""
        return await self._send("GET", path, self._get, None, timeout_s)

    async def _send(self, method: str, path: str, headers: dict, data: Optional[bytes], timeout_s, gate=None) -> Any:
        if self._loop is not asyncio.get_running_loop():
            self._bind_loop()
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = yarl.URL(self._base + quoted_path(path), encoded=True)

        async def exchange():
            return await self._exchange(method, url, headers, data)

        async def gated():  # under the cap: the gate, then the exchange with its retries
            if gate is not None:
                await gate()
            return await with_retries(
                exchange,
                max_retries=self._max_retries,
                timeout_s=timeout_s or self._timeout_s,
                connection_errors=CONNECTION_ERRORS,
            )

        if self._sem is None:
            return await gated()
        clock = episode_clock()
        with clock.waiting() if clock is not None else contextlib.nullcontext():  # a cap wait is not the episode's time
            await self._sem.acquire()
        try:
            return await gated()
        finally:
            self._sem.release()

    def _bind_loop(self) -> None:
        """First use, or use from another event loop: a session of this loop (the old loop's
        connections are dropped)."""
        if self._session is not None and self._session.connector is not None:
            with contextlib.suppress(RuntimeError):  # its loop is closed: the sockets go with the garbage
                self._session.connector._close()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ssl=self._ssl),
            timeout=aiohttp.ClientTimeout(total=None),
            skip_auto_headers=("User-Agent",),
        )
        self._sem = asyncio.Semaphore(self._max_concurrency) if self._max_concurrency > 0 else None
        self._loop = asyncio.get_running_loop()

    async def _exchange(self, method: str, url: yarl.URL, headers: dict, data: Optional[bytes]) -> tuple[int, Any, bytes]:
        for resend in (True, False):
            try:
                response = await self._session.request(
                    method, url, headers=headers, data=data, proxy=self._proxy, proxy_headers=self._proxy_headers
                )
                try:
                    return response.status, response.headers, await response.read()
                finally:
                    response.release()
            except aiohttp.ServerDisconnectedError:  # cut off before an answer: once more, on a new connection
                if not resend:
                    raise
            except aiohttp.ClientConnectorCertificateError as e:
                raise EndpointError(
                    f"TLS certificate verification failed for {self._host}: {e.certificate_error} "
                    f"(pass verify= a CA bundle or ssl.SSLContext that trusts it)"
                ) from None
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        """Close the session (from its own event loop)."""
        session, self._session, self._loop = self._session, None, None
        if session is not None:
            with contextlib.suppress(RuntimeError):
                await session.close()


def _check(name: str) -> None:
    if name not in TRANSPORTS:
        raise ValueError(f"transport {name!r}: valid: {', '.join(TRANSPORTS)}")


@contextlib.contextmanager
def http_transport(name: str) -> Iterator[None]:
    """The chat-completions clients built inside the block use transport `name` (TRANSPORTS)."""
    _check(name)
    before = clients.JsonHttpClient
    clients.JsonHttpClient = AiohttpJsonClient if name == "aiohttp" else JsonHttpClient
    try:
        yield
    finally:
        clients.JsonHttpClient = before


@contextlib.contextmanager
def ray_transport(name: str) -> Iterator[None]:
    """The pool workers of a Ray started inside the block use transport `name` (TRANSPORTS)."""
    _check(name)
    if name == TRANSPORTS[0]:
        yield
        return
    before = os.environ.get(RAY_HOOK_VARIABLE)
    os.environ[RAY_HOOK_VARIABLE] = f"{__name__}.with_worker_hook"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(RAY_HOOK_VARIABLE, None)
        else:
            os.environ[RAY_HOOK_VARIABLE] = before


def with_worker_hook(runtime_env: Optional[dict]) -> dict:
    """The job's runtime environment with `use_aiohttp` as its workers' setup hook (Ray calls
    this at `ray.init` when RAY_RUNTIME_ENV_HOOK names it)."""
    return {**(runtime_env or {}), "worker_process_setup_hook": f"{__name__}.use_aiohttp"}


def use_aiohttp() -> None:
    """This process's chat-completions clients use aiohttp (a Ray worker's setup hook)."""
    clients.JsonHttpClient = AiohttpJsonClient
