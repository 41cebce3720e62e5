"""A minimal asyncio HTTP/1.1 client for the JSON requests of chat completions.

`JsonHttpClient(base_url, ...)` keeps a pool of keep-alive connections to one endpoint,
posts JSON bodies (`post_json`) or GETs (`get_json`) and returns the decoded JSON. It does
what this project's requests need and nothing else: http and https, no redirects, no
request compression. Responses may be Content-Length, chunked (extensions and trailers
skipped) or read to EOF; `Connection: close` and HTTP/1.0 answers close the connection;
interim 1xx answers are skipped; a gzip/deflate-coded body is decoded.

It exists for CPU. Posting a 36 KB airline chat-completions body to a local server in another
process and decoding the answer costs 0.17 ms of client CPU per request at 1 in flight and
0.18 ms at 16, against 0.83 / 1.68 ms with `httpx.AsyncClient` (5x / 9x), 0.26 / 0.29 ms with
aiohttp (1.5x / 1.6x) and 5.5 / 5.6 ms through openai's `AsyncOpenAI.chat.completions.create`
(33x / 31x). That is the HTTP A/B row, `python -m rollout.bench.http_ab` (one run, the
clients interleaved, medians of 3), measured on a 2-core machine with Python 3.11.7, httpx
0.28.1, aiohttp 3.14.5 and openai 3.57.0 (over httpx2 2.16.2), while other jobs kept the load
average near 5.

Connections: an idle pooled connection the server has closed is dropped before use; one
the server closes while the request is in flight, before any byte of answer, gets the
request once more on a new connection (not counted as a retry). A client used from a new
event loop (another `asyncio.run`) drops the connections of the old one.

TLS: `verify` is True (the system's trust store, `ssl.create_default_context()`, which
honours SSL_CERT_FILE / SSL_CERT_DIR), a CA bundle file or directory, an `ssl.SSLContext`,
or False (no verification). A certificate that fails verification raises at once (no retry).

Proxies (with `trust_env`, the default, as httpx does): HTTP_PROXY / HTTPS_PROXY / ALL_PROXY
and NO_PROXY (lowercase names win, as urllib reads them), read when the client is built.
An http:// proxy carries http requests in absolute form and https ones through a CONNECT
tunnel (credentials in the proxy URL are sent as Basic Proxy-Authorization). NO_PROXY
entries: `*`, host names (matching the host and its subdomains; a leading `.` or `*` is
ignored), IP addresses and CIDR networks, each optionally with `:port`. Other proxy schemes
(https://, socks5://) are refused at construction with a ValueError naming the variable:
covering the host in NO_PROXY, unsetting the variable or `trust_env=False` lets it through.

Headers: a name that is not an HTTP token or a value with a control character (CR, LF,
NUL, ...) or non-ASCII raises ValueError naming the header, never showing its value (it
may be an API key), at construction for `headers` and per request for a request's own.
Header names merge case-insensitively (a request's own win); a request header whose value
is None (or openai's falsy Omit/NotGiven) removes a default one.

Retries follow openai's client: connection errors, timeouts and HTTP 408/409/429/5xx are
retried `max_retries` times with exponential backoff (0.5 s doubling, at most 8 s, with
jitter) or after the server's Retry-After (-ms) when it is at most 120 s (longer: no retry);
`x-should-retry: true|false` overrides the status. Other failures raise `EndpointError`
(status and the server's message; callers redact keys). `max_concurrency` > 0 caps the
requests in flight.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import functools
import ipaddress
import json
import math
import os
import random
import re
import ssl
import time
import zlib
from typing import Any, Optional, Union
from urllib.parse import quote, unquote, urlsplit
from urllib.request import getproxies_environment

from rollout.core.clock import current as episode_clock

RETRY_STATUS = {408, 409, 429}
INITIAL_BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0
MAX_RETRY_AFTER_S = 120.0  # openai's MAX_RETRY_AFTER_DELAY: a longer Retry-After is not waited for
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_PATH_SAFE = "/%:@!$&'()*+,;=~?"


class EndpointError(Exception):
    """The endpoint failed: an HTTP error status (`status`), a broken connection or a timeout (`status` None)."""

    def __init__(self, message: str, status: Optional[int] = None):
        super().__init__(message)
        self.status = status

    @classmethod
    def from_response(cls, status: int, body: bytes) -> EndpointError:
        """The error for an HTTP error answer: its status and the server's message."""
        return cls(f"HTTP {status}: {_error_message(body)}", status)


def retryable_status(status: int) -> bool:
    """Statuses openai's client retries: 408, 409, 429 and 5xx."""
    return status in RETRY_STATUS or status >= 500


def backoff_s(attempt: int) -> float:
    """Seconds to wait before retry `attempt + 1` (INITIAL_BACKOFF_S doubling, at most MAX_BACKOFF_S, with jitter)."""
    return min(MAX_BACKOFF_S, INITIAL_BACKOFF_S * 2 ** attempt) * (1 - 0.25 * random.random())


class _ProtocolError(ValueError):
    """The server's answer is not valid HTTP/1.1 (retried like a broken connection)."""


class JsonHttpClient:
    """Keep-alive JSON client for one endpoint (see module doc). Use from one event loop at a time."""

    def __init__(self, base_url: str, *, headers: dict[str, str], timeout_s: float, max_retries: int = 2,
                 max_concurrency: int = 0, verify: Union[bool, str, os.PathLike, ssl.SSLContext] = True,
                 trust_env: bool = True):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"base_url must be http(s)://..., got {base_url!r}")
        host = parts.hostname or "localhost"
        self._host = host if host.isascii() else host.encode("idna").decode("ascii")
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = _ssl_context(verify) if parts.scheme == "https" else None
        self._path = quote(parts.path.rstrip("/"), safe=_PATH_SAFE)
        bracketed = f"[{self._host}]" if ":" in self._host else self._host
        self._authority = f"{bracketed}:{self._port}"  # CONNECT's target, absolute-form requests
        default_port = self._port == (443 if parts.scheme == "https" else 80)
        self._proxy, self._proxy_var = _env_proxy(parts.scheme, self._host, self._port) if trust_env else (None, "")
        base = _merge_headers({"host": ("Host", bracketed if default_port else self._authority),
                               "accept": ("Accept", "application/json")}, headers)
        self._target = self._path
        if self._proxy is not None and self._ssl is None:  # plain http through the proxy: absolute-form
            self._target = f"http://{self._authority}{self._path}"
            if self._proxy[2]:
                base["proxy-authorization"] = ("Proxy-Authorization", self._proxy[2])
        self._headers = base
        self._post_head = _head_bytes(base, {"content-type": ("Content-Type", "application/json")})
        self._timeout_s = timeout_s
        self._max_retries = max_retries
        self._max_concurrency = max_concurrency
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, int]] = []
        self._generation = 0  # bumped by aclose: connections of an older generation are not pooled again
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._sem = asyncio.Semaphore(max_concurrency) if max_concurrency > 0 else None

    async def post_json(self, path: str, body: Any, headers: Optional[dict[str, str]] = None,
                        timeout_s: Optional[float] = None) -> Any:
        """POST `body` as JSON to base_url + path; the decoded JSON answer. Raises EndpointError
        (ValueError/TypeError for an unsendable header, before anything is sent)."""
        data = json.dumps(body, separators=(",", ":")).encode()
        if headers:
            head = _head_bytes(_merge_headers(self._headers, headers), {"content-type": ("Content-Type", "application/json")})
        else:
            head = self._post_head
        request = b"POST %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n" % (self._request_target(path), head, len(data))
        return await self._send(request + data, timeout_s)

    async def get_json(self, path: str, timeout_s: Optional[float] = None) -> Any:
        """GET base_url + path; the decoded JSON answer. Raises EndpointError."""
        request = b"GET %s HTTP/1.1\r\n%s\r\n" % (self._request_target(path), _head_bytes(self._headers, {}))
        return await self._send(request, timeout_s)

    def _request_target(self, path: str) -> bytes:
        return (self._target + _quoted_path(path)).encode("ascii")

    async def _send(self, payload: bytes, timeout_s: Optional[float]) -> Any:
        if self._loop is not asyncio.get_running_loop():
            self._bind_loop()
        timeout = timeout_s or self._timeout_s  # None (or 0): the client's
        if self._sem is None:
            return await self._with_retries(payload, timeout)
        clock = episode_clock()
        with clock.waiting() if clock is not None else contextlib.nullcontext():  # a cap wait is not the episode's time
            await self._sem.acquire()
        try:
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
        for attempt in range(self._max_retries + 1):
            delay = None
            try:
                async with asyncio.timeout(timeout_s):
                    status, headers, body = await self._exchange(payload)
            except TimeoutError:
                error = EndpointError(f"request timed out after {timeout_s}s")
            except ssl.SSLCertVerificationError as e:  # a wrong certificate stays wrong: not retried
                raise EndpointError(f"TLS certificate verification failed for {self._host}: {e.verify_message or e} "
                                    f"(pass verify= a CA bundle or ssl.SSLContext that trusts it)") from None
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, _ProtocolError) as e:
                error = EndpointError(f"connection error: {type(e).__name__}: {e}")
            else:
                if status < 300:
                    try:
                        return json.loads(body)
                    except ValueError:
                        raise EndpointError(f"HTTP {status}: the body is not JSON: {body[:200]!r}", status) from None
                error = EndpointError.from_response(status, body)
                delay = _retry_after_s(headers)
                if not _should_retry(status, headers, delay):
                    raise error
            if attempt == self._max_retries:
                raise error
            await asyncio.sleep(delay if delay is not None and 0 < delay <= MAX_RETRY_AFTER_S else backoff_s(attempt))
        raise AssertionError("unreachable")

    async def _exchange(self, payload: bytes) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) of one request, on a pooled connection or a new one."""
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
                status, version, headers = await _read_head(reader)
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
                keep_alive, body = await _read_body(reader, status, version, headers)
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
            status, _, _ = await _read_head(reader)
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


# ---- requests --------------------------------------------------------------------------------
def _merge_headers(base: dict[str, tuple[str, str]], extra: dict) -> dict[str, tuple[str, str]]:
    """`base` (lowercase name -> (name, value)) updated with `extra`, checked (see module doc)."""
    out = dict(base)
    for name, value in extra.items():
        if not isinstance(name, str) or not _TOKEN.match(name):
            shown = repr(name)[:40] if isinstance(name, str) else type(name).__name__
            raise ValueError(f"HTTP header name {shown} is not a valid header name (no CR, LF, NUL, spaces or ':'); "
                             f"refusing to send it")
        if not isinstance(value, str):
            if value is None or not value:  # None, openai's Omit / NotGiven: no such header
                out.pop(name.lower(), None)
                continue
            raise TypeError(f"HTTP header {name!r}: the value must be a str, not {type(value).__name__}")
        if _BAD_VALUE.search(value):
            raise ValueError(f"HTTP header {name!r}: its value contains a control character (CR, LF, NUL, ...); "
                             f"refusing to send it (value not shown: it may be a secret)")
        if not value.isascii():
            raise ValueError(f"HTTP header {name!r}: its value is not ASCII; refusing to send it (value not shown)")
        out[name.lower()] = (name, value)
    return out


def _head_bytes(headers: dict[str, tuple[str, str]], fixed: dict[str, tuple[str, str]]) -> bytes:
    """The header lines (checked already); `fixed` ones replace the caller's, and the framing is ours."""
    merged = {k: v for k, v in headers.items() if k not in ("content-length", "transfer-encoding")}
    merged.update(fixed)
    return "".join(f"{name}: {value}\r\n" for name, value in merged.values()).encode("ascii")


@functools.lru_cache(maxsize=64)
def _quoted_path(path: str) -> str:
    return quote(path, safe=_PATH_SAFE)


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


# ---- proxies ---------------------------------------------------------------------------------
def _env_proxy(scheme: str, host: str, port: int) -> tuple[Optional[tuple[str, int, Optional[str]]], str]:
    """((proxy host, port, Proxy-Authorization value or None), its variable's name) from the
    environment for this endpoint, or (None, "") when none applies. ValueError for a proxy
    this client cannot use."""
    proxies = getproxies_environment()
    key = scheme if proxies.get(scheme) else "all"
    url = proxies.get(key)
    if not url or no_proxy_covers(proxies.get("no", ""), scheme, host, port):
        return None, ""
    var = f"{key}_proxy" if os.environ.get(f"{key}_proxy") else f"{key.upper()}_PROXY"
    parts = urlsplit(url if "://" in url else f"http://{url}")
    advice = (f"add {host} to NO_PROXY to connect directly, unset {var}, or build the client with trust_env=False; "
              f"or pass your own httpx client")
    if parts.scheme != "http":
        raise ValueError(f"{var} names a {parts.scheme}:// proxy; rollout.core.fast_http only supports http:// proxies: {advice}")
    try:
        proxy_host, proxy_port = parts.hostname, parts.port or 80
    except ValueError:
        proxy_host = None
    if not proxy_host:
        raise ValueError(f"{var} is not a proxy URL with a host (value not shown): {advice}")
    auth = None
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        auth = "Basic " + base64.b64encode(credentials.encode()).decode("ascii")
    return (proxy_host, proxy_port, auth), var


def no_proxy_covers(no_proxy: str, scheme: str, host: str, port: int) -> bool:
    """Whether a NO_PROXY value exempts scheme://host:port from the proxy (see module doc)."""
    host = host.lower().strip("[]")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for entry in no_proxy.split(","):
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        if "://" in entry:
            entry_scheme, entry = entry.split("://", 1)
            if entry_scheme not in ("all", scheme):
                continue
            entry = entry.rstrip("/")
        entry_port = None
        if entry.startswith("["):
            end = entry.find("]")
            rest, entry = entry[end + 1:], entry[1:end]
            if rest.startswith(":") and rest[1:].isdigit():
                entry_port = int(rest[1:])
        elif entry.count(":") == 1:
            name, _, digits = entry.partition(":")
            if digits.isdigit():
                entry, entry_port = name, int(digits)
        if entry_port is not None and entry_port != port:
            continue
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        name = entry.lstrip("*").lstrip(".")
        if name and (host == name or host.endswith("." + name)):
            return True
    return False


# ---- responses -------------------------------------------------------------------------------
async def _read_head(reader: asyncio.StreamReader) -> tuple[int, str, dict[str, str]]:
    """(status, HTTP version, headers with lowercase names; repeated ones joined by ", ") of
    the final answer (interim 1xx answers skipped)."""
    while True:
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/") or not code.isdigit() or rest[3:4] not in ("", " "):
            raise _ProtocolError(f"malformed status line {lines[0][:80]!r}")
        status = int(code)
        if 100 <= status < 200 and status != 101:
            continue
        headers: dict[str, str] = {}
        for line in lines[1:-2]:
            name, sep, value = line.partition(":")
            if not sep:
                continue
            name, value = name.strip().lower(), value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        return status, version, headers


async def _read_body(reader: asyncio.StreamReader, status: int, version: str, headers: dict[str, str]) -> tuple[bool, bytes]:
    """(keep the connection, body) after the head of an answer."""
    connection = {t.strip() for t in headers.get("connection", "").lower().split(",")}
    keep_alive = "keep-alive" in connection if version == "HTTP/1.0" else "close" not in connection
    if status in (204, 304):
        return keep_alive, b""
    transfer = headers.get("transfer-encoding")
    if transfer is not None:  # wins over any Content-Length (RFC 9112 6.3)
        codings = [c.strip() for c in transfer.lower().split(",") if c.strip()]
        if codings and codings[-1] == "chunked":
            body = await _read_chunked(reader)
            codings.pop()
        else:
            body, keep_alive = await reader.read(), False
        body = _decode(body, codings)
    elif "content-length" in headers:
        lengths = {v.strip() for v in headers["content-length"].split(",")}
        length = lengths.pop()
        if lengths or not length.isdigit():
            raise _ProtocolError(f"invalid Content-Length {headers['content-length'][:40]!r}")
        body = await reader.readexactly(int(length))
    else:
        body, keep_alive = await reader.read(), False
    encoding = headers.get("content-encoding")
    if encoding:
        body = _decode(body, [c.strip() for c in encoding.lower().split(",") if c.strip()])
    return keep_alive, body


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks = []
    while True:
        size = (await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip()
        if not size or size.strip(b"0123456789abcdefABCDEF"):
            raise _ProtocolError(f"invalid chunk size {size[:20]!r}")
        n = int(size, 16)
        if n == 0:
            break
        chunks.append(await reader.readexactly(n))
        if await reader.readexactly(2) != b"\r\n":
            raise _ProtocolError("a chunk is not followed by CRLF")
    while await reader.readuntil(b"\r\n") != b"\r\n":  # trailer fields: skipped
        pass
    return b"".join(chunks)


def _decode(body: bytes, codings: list[str]) -> bytes:
    try:
        for coding in reversed(codings):
            if coding in ("gzip", "x-gzip"):
                body = zlib.decompress(body, 16 + zlib.MAX_WBITS)
            elif coding == "deflate":
                try:
                    body = zlib.decompress(body)
                except zlib.error:
                    body = zlib.decompress(body, -zlib.MAX_WBITS)
            elif coding != "identity":
                raise _ProtocolError(f"unsupported content coding {coding[:20]!r}")
    except zlib.error as e:
        raise _ProtocolError(f"corrupt {'/'.join(codings)} body: {e}") from None
    return body


def _retry_after_s(headers: dict[str, str]) -> Optional[float]:
    """Seconds the server asks to wait (retry-after-ms, retry-after as seconds or a date), as openai reads them."""
    for name, divisor in (("retry-after-ms", 1000), ("retry-after", 1)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            delay = float(value)
        except ValueError:
            continue
        if math.isinf(delay):
            return MAX_RETRY_AFTER_S + 1
        return delay / divisor
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        date = email.utils.parsedate_tz(value)
        return None if date is None else float(email.utils.mktime_tz(date) - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


def _should_retry(status: int, headers: dict[str, str], retry_after: Optional[float]) -> bool:
    if retry_after is not None and retry_after > MAX_RETRY_AFTER_S:
        return False
    flag = headers.get("x-should-retry")
    if flag in ("true", "false"):
        return flag == "true"
    return retryable_status(status)


def _error_message(body: bytes) -> str:
    try:
        data = json.loads(body)
        error = data.get("error") if isinstance(data, dict) else None
        message = error.get("message") if isinstance(error, dict) else (error or data)
        return str(message)[:500]
    except ValueError:
        return body[:500].decode(errors="replace")
