"""`JsonHttpClient`: keep-alive JSON requests to one endpoint (the package doc says what it does)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, Optional, Union
from urllib.parse import SplitResult, quote, urlsplit

from rollout.core.clock import current as episode_clock
from rollout.core.fast_http.proxy import env_proxy
from rollout.core.fast_http.retry import EndpointError, with_retries
from rollout.core.fast_http.wire import PATH_SAFE, ProtocolError, head_bytes, merge_headers, quoted_path, read_body, read_head

# an exchange that fails with one of these is retried like a broken connection
CONNECTION_ERRORS = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ProtocolError)


def split_base_url(base_url: str) -> tuple[SplitResult, str, int, str]:
    """An endpoint's base URL as a client reads it: (its parts, the host (IDNA for a non-ASCII
    name), the port (the scheme's default when none is given), the path quoted, without a
    trailing slash). ValueError unless it is http(s)."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"base_url must be http(s)://..., got {base_url!r}")
    host = parts.hostname or "localhost"
    host = host if host.isascii() else host.encode("idna").decode("ascii")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts, host, port, quote(parts.path.rstrip("/"), safe=PATH_SAFE)


class JsonHttpClient:
    """Keep-alive JSON client for one endpoint (see module doc). Use from one event loop at a time."""

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
        parts, self._host, self._port, self._path = split_base_url(base_url)
        self._ssl = _ssl_context(verify) if parts.scheme == "https" else None
        bracketed = f"[{self._host}]" if ":" in self._host else self._host
        self._authority = f"{bracketed}:{self._port}"  # CONNECT's target, absolute-form requests
        default_port = self._port == (443 if parts.scheme == "https" else 80)
        self._proxy, self._proxy_var = env_proxy(parts.scheme, self._host, self._port) if trust_env else (None, "")
        base = merge_headers(
            {"host": ("Host", bracketed if default_port else self._authority), "accept": ("Accept", "application/json")}, headers
        )
        self._target = self._path
        if self._proxy is not None and self._ssl is None:  # plain http through the proxy: absolute-form
            self._target = f"http://{self._authority}{self._path}"
            if self._proxy[2]:
                base["proxy-authorization"] = ("Proxy-Authorization", self._proxy[2])
        self._headers = base
        self._post_head = head_bytes(base, {"content-type": ("Content-Type", "application/json")})
        self._timeout_s = timeout_s
        self._max_retries = max_retries
        self._max_concurrency = max_concurrency
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, int]] = []
        self._generation = 0  # bumped by aclose: connections of an older generation are not pooled again
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._sem = asyncio.Semaphore(max_concurrency) if max_concurrency > 0 else None

    async def post_json(
        self,
        path: str,
        body: Any,
        headers: Optional[dict[str, str]] = None,
        timeout_s: Optional[float] = None,
        gate: Optional[Callable[[], Awaitable[None]]] = None,
    ) -> Any:
        """POST `body` as JSON to base_url + path; the decoded JSON answer. Raises EndpointError
        (ValueError/TypeError for an unsendable header, before anything is sent). `gate`, when
        given, is awaited once the request holds its slot under the cap, just before it is sent
        (a caller that holds requests while something changes)."""
        data = json.dumps(body, separators=(",", ":")).encode()
        if headers:
            head = head_bytes(merge_headers(self._headers, headers), {"content-type": ("Content-Type", "application/json")})
        else:
            head = self._post_head
        request = b"POST %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n" % (self._request_target(path), head, len(data))
        return await self._send(request + data, timeout_s, gate)

    async def get_json(self, path: str, timeout_s: Optional[float] = None) -> Any:
        """GET base_url + path; the decoded JSON answer. Raises EndpointError."""
        request = b"GET %s HTTP/1.1\r\n%s\r\n" % (self._request_target(path), head_bytes(self._headers, {}))
        return await self._send(request, timeout_s)

    def _request_target(self, path: str) -> bytes:
        return (self._target + quoted_path(path)).encode("ascii")

    async def _send(
        self, payload: bytes, timeout_s: Optional[float], gate: Optional[Callable[[], Awaitable[None]]] = None
    ) -> Any:
        if self._loop is not asyncio.get_running_loop():
            self._bind_loop()
        timeout = timeout_s or self._timeout_s  # None (or 0): the client's
        if self._sem is None:
            if gate is not None:
                await gate()
            return await self._with_retries(payload, timeout)
        clock = episode_clock()
        with clock.waiting() if clock is not None else contextlib.nullcontext():  # a cap wait is not the episode's time
            await self._sem.acquire()
        try:
            if gate is not None:
                await gate()
            return await self._with_retries(payload, timeout)
        finally:
            self._sem.release()

    def _bind_loop(self) -> None:
        """First use, or use from another event loop: the old loop's connections and semaphore are unusable here."""
        if self._loop is not None:
            idle, self._idle = self._idle, []
            for _, writer, _ in idle:
                try:
                    writer.close()
                except RuntimeError:  # its loop is closed; the socket goes with the garbage
                    pass
            self._sem = asyncio.Semaphore(self._max_concurrency) if self._max_concurrency > 0 else None
        self._loop = asyncio.get_running_loop()

    async def _with_retries(self, payload: bytes, timeout_s: float) -> Any:
        return await with_retries(
            lambda: self._exchange(payload),
            max_retries=self._max_retries,
            timeout_s=timeout_s,
            connection_errors=CONNECTION_ERRORS,
        )

    async def _exchange(self, payload: bytes) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) of one request, on a pooled connection or a new one. A
        certificate that fails verification raises EndpointError (a wrong certificate stays wrong:
        never retried)."""
        try:
            return await self._exchange_once(payload)
        except ssl.SSLCertVerificationError as e:
            raise EndpointError(
                f"TLS certificate verification failed for {self._host}: {e.verify_message or e} "
                f"(pass verify= a CA bundle or ssl.SSLContext that trusts it)"
            ) from None

    async def _exchange_once(self, payload: bytes) -> tuple[int, dict[str, str], bytes]:
        conn = self._take_idle()
        reused = conn is not None
        generation = self._generation
        while True:
            if conn is None:
                conn = (*await self._connect(), generation)
            reader, writer, generation = conn
            try:
                writer.write(payload)
                await writer.drain()
                status, version, headers = await read_head(reader)
            except (OSError, asyncio.IncompleteReadError) as e:
                writer.close()
                if reused and not (isinstance(e, asyncio.IncompleteReadError) and e.partial):
                    conn, reused = None, False  # closed by the server before it answered: once more, on a new connection
                    continue
                raise
            except BaseException:
                writer.close()  # a cut-off exchange leaves the connection in an unknown state
                raise
            try:
                keep_alive, body = await read_body(reader, status, version, headers)
            except BaseException:
                writer.close()
                raise
            break
        if keep_alive and generation == self._generation:
            self._idle.append(conn)
        else:
            writer.close()
        return status, headers, body

    def _take_idle(self) -> Optional[tuple[asyncio.StreamReader, asyncio.StreamWriter, int]]:
        while self._idle:
            conn = self._idle.pop()
            if conn[0].at_eof() or conn[1].is_closing():  # the server closed it while it was idle
                conn[1].close()
                continue
            return conn
        return None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._proxy is None:
            return await asyncio.open_connection(self._host, self._port, ssl=self._ssl)
        proxy_host, proxy_port, proxy_auth = self._proxy
        reader, writer = await asyncio.open_connection(proxy_host, proxy_port)
        if self._ssl is None:
            return reader, writer
        try:  # https through the proxy: a CONNECT tunnel, then TLS with the endpoint inside it
            auth = f"Proxy-Authorization: {proxy_auth}\r\n" if proxy_auth else ""
            writer.write(f"CONNECT {self._authority} HTTP/1.1\r\nHost: {self._authority}\r\n{auth}\r\n".encode("ascii"))
            await writer.drain()
            status, _, _ = await read_head(reader)
            if not 200 <= status < 300:
                raise ConnectionError(f"the proxy of {self._proxy_var} answered CONNECT {self._authority} with HTTP {status}")
            await writer.start_tls(self._ssl, server_hostname=self._host)
        except BaseException:
            writer.close()
            raise
        return reader, writer

    async def aclose(self) -> None:
        """Close the pooled connections; those in use are closed when their request ends."""
        if self._loop is not asyncio.get_running_loop():
            self._bind_loop()
        self._generation += 1
        idle, self._idle = self._idle, []
        for _, writer, _ in idle:
            writer.close()
        if idle:
            await asyncio.wait([asyncio.ensure_future(w.wait_closed()) for _, w, _ in idle], timeout=1.0)


def _ssl_context(verify) -> ssl.SSLContext:
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify is True:
        context = ssl.create_default_context()
    elif verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif isinstance(verify, (str, os.PathLike)):
        path = os.fspath(verify)
        context = ssl.create_default_context(capath=path) if os.path.isdir(path) else ssl.create_default_context(cafile=path)
    else:
        raise TypeError(f"verify must be a bool, a CA bundle path or an ssl.SSLContext, not {type(verify).__name__}")
    context.set_alpn_protocols(["http/1.1"])
    return context
