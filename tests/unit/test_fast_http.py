"""rollout.core.fast_http against tiny HTTP/1.1 servers (and a tiny proxy) on the loopback, one branch a test."""

from __future__ import annotations

import asyncio
import base64
import datetime
import gc
import gzip
import inspect
import json
import random
import socket
import ssl
import time
import warnings
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from rollout.core import fast_http
from rollout.core.fast_http import EndpointError, JsonHttpClient, no_proxy_covers, retry

PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "REQUEST_METHOD")


@pytest.fixture(autouse=True)
def _quick_backoff_no_proxies(monkeypatch):
    monkeypatch.setattr(retry, "INITIAL_BACKOFF_S", 0.001)
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)


# ---- servers ---------------------------------------------------------------------------------
@dataclass
class Request:
    method: str
    target: str  # as sent: origin-form or absolute-form
    path: str  # the path (and query) of the target
    headers: list[tuple[str, str]]  # as received, in order
    body: bytes
    conn: int = 0  # which connection (0, 1, ...)
    index: int = 0  # which request on its connection

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body)


def answer(
    status: int = 200,
    body: bytes = b'{"ok": true}',
    *,
    headers: tuple[str, ...] = (),
    length: bool = True,
    version: str = "HTTP/1.1",
) -> bytes:
    head = [f"{version} {status} Whatever"] + list(headers) + ([f"Content-Length: {len(body)}"] if length else [])
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def echo(request: Request) -> bytes:
    """The default handler: the request's path, its JSON body and which connection carried it."""
    return answer(
        body=json.dumps({"path": request.path, "body": request.json() if request.body else None, "conn": request.conn}).encode()
    )


class Server:
    """An HTTP/1.1 server on a free loopback port. `handler(request)` (sync or async) returns the raw
    answer, (answer, close after it), or None to close the connection without answering."""

    def __init__(self, handler=echo, *, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None):
        self.handler, self.host, self.tls = handler, host, tls
        self.requests: list[Request] = []
        self.peers: list[tuple] = []
        self.closed = 0  # connections that ended
        self._tasks: list[asyncio.Task] = []

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._serve, self.host, 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def url(self, path: str = "/v1") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}{path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = len(self.peers)
        self.peers.append(writer.get_extra_info("peername"))
        self._tasks.append(asyncio.current_task())
        try:
            for index in range(10**6):
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")[:-2]
                method, target, _ = lines[0].split(" ")
                headers = [(k.strip(), v.strip()) for k, v in (line.split(":", 1) for line in lines[1:])]
                length = int(next((v for k, v in headers if k.lower() == "content-length"), "0"))
                parts = urlsplit(target)
                request = Request(
                    method,
                    target,
                    parts.path + (f"?{parts.query}" if parts.query else ""),
                    headers,
                    await reader.readexactly(length),
                    conn,
                    index,
                )
                self.requests.append(request)
                reply = self.handler(request)
                if inspect.isawaitable(reply):
                    reply = await reply
                if reply is None:
                    return
                data, close = reply if isinstance(reply, tuple) else (reply, False)
                writer.write(data)
                await writer.drain()
                if close:
                    return
        finally:
            self.closed += 1
            writer.close()


class Proxy:
    """An HTTP proxy: CONNECT tunnels, and absolute-form requests piped to their origin."""

    def __init__(self):
        self.heads: list[str] = []
        self._tasks: list[asyncio.Task] = []

    async def __aenter__(self) -> Proxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader, writer) -> None:
        self._tasks.append(asyncio.current_task())
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head.decode())
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ")
        if method == "CONNECT":
            host, port = target.rsplit(":", 1)
            up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            parts = urlsplit(target)
            up_reader, up_writer = await asyncio.open_connection(parts.hostname, parts.port)
            up_writer.write(head)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True)

    def request_lines(self) -> list[str]:
        return [h.split("\r\n", 1)[0] for h in self.heads]


async def _pipe(reader, writer) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


def client(url: str, **kwargs) -> JsonHttpClient:
    return JsonHttpClient(url, **{"headers": {"Authorization": "Bearer sk-test"}, "timeout_s": 5.0, "max_retries": 0, **kwargs})


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


# ---- bodies and framing ----------------------------------------------------------------------
def test_content_length_body_and_request_format():
    async def main():
        async with Server() as server:
            http = client(server.url(), headers={"Authorization": "Bearer sk-test", "X-Extra": "1"})
            out = await http.post_json("/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "hé"}]})
            await http.aclose()
        assert out == {
            "path": "/v1/chat/completions",
            "body": {"model": "m", "messages": [{"role": "user", "content": "hé"}]},
            "conn": 0,
        }
        (request,) = server.requests
        assert request.method == "POST" and request.target == "/v1/chat/completions"
        assert request.header("Host") == [f"127.0.0.1:{server.port}"]
        assert request.header("Authorization") == ["Bearer sk-test"] and request.header("X-Extra") == ["1"]
        assert request.header("Content-Type") == ["application/json"]
        assert request.header("Content-Length") == [str(len(request.body))]

    run(main())


def test_chunked_body_with_extensions_and_trailers():
    chunks = [b'{"parts": [', b'"a", ', b'"b"', b"]}"]
    body = b"".join(b'%x;ext=1;q="v"\r\n%s\r\n' % (len(c), c) for c in chunks) + b"0;last\r\nX-Trailer: t\r\n\r\n"
    reply = answer(body=body, headers=("Transfer-Encoding: chunked",), length=False)

    async def main():
        async with Server(lambda r: reply) as server:
            http = client(server.url())
            assert await http.post_json("/x", {}) == {"parts": ["a", "b"]}
            assert await http.post_json("/x", {}) == {"parts": ["a", "b"]}  # trailers consumed: the connection is in step
            await http.aclose()
        assert {r.conn for r in server.requests} == {0}

    run(main())


def test_transfer_encoding_wins_over_content_length():
    body = b'7\r\n{"a":1}\r\n0\r\n\r\n'
    reply = answer(body=body, headers=("Transfer-Encoding: chunked", "Content-Length: 3"), length=False)

    async def main():
        async with Server(lambda r: reply) as server:
            http = client(server.url())
            assert await http.post_json("/x", {}) == {"a": 1}
            assert await http.post_json("/x", {}) == {"a": 1}
            await http.aclose()

    run(main())


def test_connection_close_answer_is_not_reused():
    async def main():
        async with Server(lambda r: (answer(headers=("Connection: close",)), True)) as server:
            http = client(server.url())
            assert await http.post_json("/x", {}) == {"ok": True}
            assert await http.post_json("/x", {}) == {"ok": True}
            await http.aclose()
        assert [r.conn for r in server.requests] == [0, 1]

    run(main())


@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/1.0"])
def test_body_read_to_eof_without_length(version):
    async def main():
        async with Server(lambda r: (answer(body=b'{"eof": 1}', length=False, version=version), True)) as server:
            http = client(server.url())
            assert await http.post_json("/x", {}) == {"eof": 1}
            assert await http.post_json("/x", {}) == {"eof": 1}
            await http.aclose()
        assert [r.conn for r in server.requests] == [0, 1]

    run(main())


def test_http10_answer_closes_unless_keep_alive():
    async def main():
        async with Server(lambda r: answer(version="HTTP/1.0", headers=("Connection: keep-alive",))) as server:
            http = client(server.url())
            for _ in range(3):
                await http.post_json("/x", {})
            await http.aclose()
        assert [r.conn for r in server.requests] == [0, 0, 0]
        async with Server(lambda r: (answer(version="HTTP/1.0"), True)) as server:
            http = client(server.url())
            for _ in range(2):
                await http.post_json("/x", {})
            await http.aclose()
        assert [r.conn for r in server.requests] == [0, 1]

    run(main())


def test_interim_1xx_skipped_gzip_decoded():
    data = gzip.compress(b'{"z": [1, 2]}')
    reply = b"HTTP/1.1 100 Continue\r\n\r\n" + answer(body=data, headers=("Content-Encoding: gzip",))

    async def main():
        async with Server(lambda r: reply) as server:
            http = client(server.url())
            assert await http.post_json("/x", {}) == {"z": [1, 2]}
            assert await http.post_json("/x", {}) == {"z": [1, 2]}
            await http.aclose()

    run(main())


def test_non_json_2xx_raises_without_retry():
    async def main():
        async with Server(lambda r: answer(body=b"<html>busy</html>")) as server:
            http = client(server.url(), max_retries=3)
            with pytest.raises(EndpointError, match="not JSON") as caught:
                await http.post_json("/x", {})
            await http.aclose()
        assert caught.value.status == 200 and len(server.requests) == 1

    run(main())


def test_malformed_answer_is_a_connection_error():
    async def main():
        async with Server(lambda r: (b"garbage\r\n\r\n", True)) as server:
            http = client(server.url(), max_retries=1)
            with pytest.raises(EndpointError, match="malformed status line") as caught:
                await http.post_json("/x", {})
        assert caught.value.status is None and len(server.requests) == 2

    run(main())


# ---- connections -----------------------------------------------------------------------------
def test_keep_alive_one_connection_for_n_requests():
    async def main():
        async with Server() as server:
            http = client(server.url())
            for i in range(25):
                assert (await http.post_json("/x", {"i": i}))["body"] == {"i": i}
            await http.aclose()
        assert len(server.peers) == 1 and len(server.requests) == 25

    run(main())


def test_idle_connection_closed_by_server_is_dropped_before_use():
    async def main():
        async with Server(lambda r: (answer(), True)) as server:  # closes after answering, without saying so
            http = client(server.url())
            await http.post_json("/x", {})
            for _ in range(100):  # until the client's loop has seen the EOF
                if server.closed:
                    break
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.01)
            await http.post_json("/x", {})
            await http.aclose()
        assert [r.conn for r in server.requests] == [0, 1]  # nothing was sent on the dead connection

    run(main())


def test_stale_pooled_connection_gets_the_request_once_more(monkeypatch):
    monkeypatch.setattr(retry, "INITIAL_BACKOFF_S", 30.0)  # a retry would time the test out

    def handler(request):
        if request.conn == 0 and request.index == 1:
            return None  # the keep-alive race: the server closes as the request arrives
        return echo(request)

    async def main():
        async with Server(handler) as server:
            http = client(server.url(), max_retries=0)
            await http.post_json("/x", {"n": 1})
            out = await http.post_json("/x", {"n": 2})
            await http.aclose()
        assert out == {"path": "/v1/x", "body": {"n": 2}, "conn": 1}
        assert [(r.conn, r.json()) for r in server.requests] == [(0, {"n": 1}), (0, {"n": 2}), (1, {"n": 2})]

    run(main())


def test_stale_resend_happens_once_then_it_is_an_error():
    async def main():
        async with Server(lambda r: echo(r) if len(server.requests) == 1 else None) as server:
            http = client(server.url(), max_retries=0)
            await http.post_json("/x", {})
            with pytest.raises(EndpointError, match="connection error"):
                await http.post_json("/x", {})
        assert len(server.requests) == 3  # the first, the stale attempt, one resend on a new connection

    run(main())


def test_partial_answer_on_pooled_connection_is_not_resent():
    async def main():
        async with Server(lambda r: echo(r) if r.index == 0 else (b"HTTP/1.1 200 OK\r\nContent-Le", True)) as server:
            http = client(server.url(), max_retries=0)
            await http.post_json("/x", {})
            with pytest.raises(EndpointError, match="IncompleteReadError"):
                await http.post_json("/x", {})
        assert len(server.requests) == 2

    run(main())


def test_client_survives_a_new_event_loop():
    async def one(http):
        return await http.post_json("/x", {})

    async def main():
        async with Server() as server:
            http = client(server.url(), max_concurrency=1)
            await one(http)
            # a second asyncio.run in another thread: a new loop, the old pool is unusable there
            out = await asyncio.to_thread(lambda: asyncio.run(one(http)))
            await http.aclose()
        assert out["conn"] == 1

    run(main())
    with warnings.catch_warnings():  # the dead loop's connection cannot be closed through it: it goes with the GC
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def test_aclose_closes_idle_and_in_flight_connections():
    async def slow(request):
        await asyncio.sleep(0.05)
        return echo(request)

    async def main():
        async with Server(slow) as server:
            http = client(server.url())
            await http.post_json("/x", {})
            in_flight = asyncio.ensure_future(http.post_json("/x", {}))
            await asyncio.sleep(0.01)
            await http.aclose()
            await in_flight
            for _ in range(100):
                if server.closed == 1:
                    break
                await asyncio.sleep(0.005)
            assert server.closed == 1 and not http._idle  # the in-flight one was closed, not pooled

    run(main())


# ---- retries ---------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [429, 500, 502, 503, 408])
def test_retryable_status_retried_with_backoff_then_raised(status, monkeypatch):
    waits = []
    monkeypatch.setattr(retry, "backoff_s", lambda attempt: waits.append(attempt) or 0.001)
    body = json.dumps({"error": {"message": f"try later ({status})"}}).encode()

    async def main():
        async with Server(lambda r: answer(status, body)) as server:
            http = client(server.url(), max_retries=2)
            with pytest.raises(EndpointError) as caught:
                await http.post_json("/x", {})
            await http.aclose()
        return caught.value, len(server.requests)

    error, requests = run(main())
    assert error.status == status and f"try later ({status})" in str(error)
    assert requests == 3 and waits == [0, 1]


def test_backoff_doubles_and_is_capped():
    random.seed(1)
    waits = [fast_http.backoff_s(a) for a in range(8)]
    assert all(0.75 * min(8.0, 0.001 * 2**a) <= w <= min(8.0, 0.001 * 2**a) for a, w in enumerate(waits))


def test_retry_then_success():
    async def main():
        async with Server(lambda r: answer(503) if r.index < 2 else echo(r)) as server:
            http = client(server.url(), max_retries=2)
            out = await http.post_json("/x", {"a": 1})
            await http.aclose()
        assert out["body"] == {"a": 1} and len(server.requests) == 3

    run(main())


@pytest.mark.parametrize(
    "header,retried",
    [("retry-after-ms: 30", True), ("Retry-After: 0.03", True), ("Retry-After: 1000", False), ("x-should-retry: false", False)],
)
def test_retry_after_and_should_retry_headers(header, retried, monkeypatch):
    monkeypatch.setattr(retry, "backoff_s", lambda attempt: pytest.fail("backoff used instead of Retry-After"))

    async def main():
        async with Server(lambda r: answer(429, headers=(header,)) if r.index == 0 else echo(r)) as server:
            http = client(server.url(), max_retries=1)
            start = time.monotonic()
            try:
                await http.post_json("/x", {})
            except EndpointError as e:
                assert e.status == 429
            await http.aclose()
        return len(server.requests), time.monotonic() - start

    requests, elapsed = run(main())
    assert requests == (2 if retried else 1)
    if retried:
        assert elapsed >= 0.03


def test_x_should_retry_true_retries_a_4xx():
    async def main():
        async with Server(lambda r: answer(400, headers=("x-should-retry: true",)) if r.index == 0 else echo(r)) as server:
            http = client(server.url(), max_retries=1)
            await http.post_json("/x", {})
            await http.aclose()
        assert len(server.requests) == 2

    run(main())


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_4xx_not_retried(status):
    async def main():
        async with Server(lambda r: answer(status, b'{"error": {"message": "bad"}}')) as server:
            http = client(server.url(), max_retries=3)
            with pytest.raises(EndpointError, match=f"HTTP {status}: bad") as caught:
                await http.post_json("/x", {})
            await http.aclose()
        assert caught.value.status == status and len(server.requests) == 1

    run(main())


def test_timeouts_retried_then_raised():
    async def never(request):
        await asyncio.Event().wait()

    async def main():
        async with Server(never) as server:
            http = client(server.url(), timeout_s=0.05, max_retries=2)
            start = time.monotonic()
            with pytest.raises(EndpointError, match="timed out after 0.05s") as caught:
                await http.post_json("/x", {})
            elapsed = time.monotonic() - start
            with pytest.raises(EndpointError, match="timed out after 0.02s"):  # a request's own timeout
                await http.post_json("/x", {}, timeout_s=0.02)
        assert caught.value.status is None and elapsed < 1.0
        assert len(server.requests) == 6 and len(server.peers) == 6  # a timed-out connection is never reused

    run(main())


def test_connection_refused_retried_then_raised():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused

        async def main():
            http = client(f"http://127.0.0.1:{port}/v1", max_retries=1)
            with pytest.raises(EndpointError, match="connection error"):
                await http.post_json("/x", {})

        run(main())


# ---- concurrency -----------------------------------------------------------------------------
@pytest.mark.parametrize("cap,expected", [(3, 3), (0, 12)])
def test_max_concurrency_bounds_requests_in_flight(cap, expected):
    state = {"now": 0, "peak": 0}

    async def slow(request):
        state["now"] += 1
        state["peak"] = max(state["peak"], state["now"])
        await asyncio.sleep(0.03)
        state["now"] -= 1
        return echo(request)

    async def main():
        async with Server(slow) as server:
            http = client(server.url(), max_concurrency=cap)
            outs = await asyncio.gather(*(http.post_json("/x", {"i": i}) for i in range(12)))
            await http.aclose()
        assert [o["body"]["i"] for o in outs] == list(range(12))
        assert len(server.peers) == expected  # no more connections than the cap

    run(main())
    assert state["peak"] == expected


# ---- URLs ------------------------------------------------------------------------------------
@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback (::1)")
def test_ipv6_host_in_base_url():
    async def main():
        async with Server(host="::1") as server:
            http = client(server.url())
            out = await http.post_json("/chat/completions", {"v": 6})
            await http.aclose()
        assert out["path"] == "/v1/chat/completions" and out["body"] == {"v": 6}
        assert server.requests[0].header("Host") == [f"[::1]:{server.port}"]
        assert server.peers[0][0] == "::1"

    run(main())


def test_base_url_path_prefix_kept():
    async def main():
        async with Server() as server:
            http = client(server.url("/openai/deploy ment/v1/"))
            out = await http.post_json("/chat/completions", {})
            listed = await http.get_json("/models")
            await http.aclose()
        assert out["path"] == "/openai/deploy%20ment/v1/chat/completions"
        assert listed["path"] == "/openai/deploy%20ment/v1/models" and server.requests[1].method == "GET"

    run(main())


def test_host_header_default_port_and_bad_scheme():
    http = JsonHttpClient("http://example.invalid/v1", headers={}, timeout_s=1)
    assert http._headers["host"] == ("Host", "example.invalid")
    https = JsonHttpClient("https://example.invalid:8443", headers={}, timeout_s=1)
    assert https._headers["host"] == ("Host", "example.invalid:8443")
    with pytest.raises(ValueError, match="http"):
        JsonHttpClient("ftp://example.invalid", headers={}, timeout_s=1)


# ---- headers ---------------------------------------------------------------------------------
SECRET = "sk-live-0123456789"


@pytest.mark.parametrize(
    "value",
    [f"{SECRET}\r\nX-Injected: 1", f"{SECRET}\nX-Injected: 1", f"{SECRET}\rX", f"{SECRET}\0", f"{SECRET}\n", f"{SECRET}é"],
)
def test_api_key_with_a_newline_cannot_inject_a_header(value):
    with pytest.raises(ValueError, match="'Authorization'") as caught:
        JsonHttpClient("http://127.0.0.1:9/v1", headers={"Authorization": f"Bearer {value}"}, timeout_s=1)
    assert SECRET not in str(caught.value)


def test_bad_request_header_refused_before_sending():
    async def main():
        async with Server() as server:
            http = client(server.url())
            with pytest.raises(ValueError, match="'X-Key'") as caught:
                await http.post_json("/x", {}, headers={"X-Key": f"{SECRET}\r\nX-Injected: 1"})
            assert SECRET not in str(caught.value)
            with pytest.raises(ValueError, match="not a valid header name"):
                await http.post_json("/x", {}, headers={"X-A\r\nX-Injected": "1"})
            with pytest.raises(ValueError, match="not a valid header name"):
                await http.post_json("/x", {}, headers={"X A": "1"})
            with pytest.raises(TypeError, match="'X-N'"):
                await http.post_json("/x", {}, headers={"X-N": 3})
            await http.post_json("/x", {})  # the client is still fine
            await http.aclose()
        assert len(server.requests) == 1 and not server.requests[0].header("X-Injected")

    run(main())


def test_request_headers_merge_case_insensitively():
    class Omit:  # openai's Omit / NotGiven are falsy
        def __bool__(self):
            return False

    async def main():
        async with Server() as server:
            http = client(server.url(), headers={"Authorization": "Bearer a", "X-Drop": "1", "X-Gone": "1"})
            await http.post_json(
                "/x",
                {},
                headers={
                    "authorization": "Bearer b",
                    "X-Drop": None,
                    "X-Gone": Omit(),
                    "content-length": "999",
                    "Content-Type": "text/plain",
                },
            )
            await http.post_json("/x", {})
            await http.aclose()
        first, second = server.requests
        assert first.header("Authorization") == ["Bearer b"] and not first.header("X-Drop") and not first.header("X-Gone")
        assert first.header("Content-Length") == ["2"] and first.header("Content-Type") == ["application/json"]
        assert second.header("Authorization") == ["Bearer a"] and second.header("X-Drop") == ["1"]

    run(main())


# ---- TLS -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """(server context, CA file): a throwaway CA and a certificate it signed for localhost, 127.0.0.1 and ::1."""
    pytest.importorskip("cryptography")
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def cert(subject, key, issuer, issuer_key, ca):
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.IPAddress(ipaddress.ip_address("::1")),
                    ]
                ),
                critical=False,
            )
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fast_http test CA")])
    ca = cert(ca_name, ca_key, ca_name, ca_key, True)
    leaf = cert(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]), key, ca_name, ca_key, False)
    root = tmp_path_factory.mktemp("tls")
    (root / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (root / "cert.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (root / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(root / "cert.pem", root / "key.pem")
    return server, str(root / "ca.pem")


@pytest.mark.parametrize("how", ["ca_file", "ssl_context"])
def test_https_with_a_self_signed_ca(tls, how):
    server_ctx, ca_file = tls
    verify = ca_file if how == "ca_file" else ssl.create_default_context(cafile=ca_file)

    async def main():
        async with Server(tls=server_ctx) as server:
            http = client(server.url(), verify=verify)
            for i in range(3):
                assert (await http.post_json("/chat/completions", {"i": i}))["body"] == {"i": i}
            await http.aclose()
            local = client(f"https://localhost:{server.port}/v1", verify=verify)  # the name checked too
            assert (await local.post_json("/x", {}))["path"] == "/v1/x"
            await local.aclose()
        assert len(server.peers) == 2  # keep-alive over TLS

    run(main())


def test_https_untrusted_certificate_fails_at_once(tls, monkeypatch):
    server_ctx, _ = tls
    monkeypatch.setattr(retry, "backoff_s", lambda attempt: pytest.fail("a certificate failure was retried"))

    async def main():
        async with Server(tls=server_ctx) as server:
            http = client(server.url(), max_retries=3)  # the system's trust store
            with pytest.raises(EndpointError, match="certificate verification failed") as caught:
                await http.post_json("/x", {})
        assert caught.value.status is None and not server.requests

    run(main())


# ---- proxies ---------------------------------------------------------------------------------
def test_http_proxy_absolute_form_with_credentials(monkeypatch):
    async def main():
        async with Server() as server, Proxy() as proxy:
            monkeypatch.setenv("HTTP_PROXY", f"http://user:p%40ss@127.0.0.1:{proxy.port}")
            monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # not for http
            http = client(server.url())
            outs = [await http.post_json("/chat/completions", {"i": i}) for i in range(2)]
            await http.aclose()
        assert [o["body"] for o in outs] == [{"i": 0}, {"i": 1}] and outs[0]["path"] == "/v1/chat/completions"
        assert proxy.request_lines() == [f"POST http://127.0.0.1:{server.port}/v1/chat/completions HTTP/1.1"]
        expected = "Basic " + base64.b64encode(b"user:p@ss").decode()
        assert all(r.header("Proxy-Authorization") == [expected] for r in server.requests)
        assert all(r.header("Host") == [f"127.0.0.1:{server.port}"] for r in server.requests)

    run(main())


def test_https_through_a_connect_tunnel(tls, monkeypatch):
    server_ctx, ca_file = tls

    async def main():
        async with Server(tls=server_ctx) as server, Proxy() as proxy:
            monkeypatch.setenv("https_proxy", f"http://u:pw@127.0.0.1:{proxy.port}")
            http = client(server.url(), verify=ca_file)
            outs = [await http.post_json("/chat/completions", {"i": i}) for i in range(2)]
            await http.aclose()
        assert [o["body"] for o in outs] == [{"i": 0}, {"i": 1}]
        assert proxy.request_lines() == [f"CONNECT 127.0.0.1:{server.port} HTTP/1.1"]
        assert "Proxy-Authorization: Basic " + base64.b64encode(b"u:pw").decode() in proxy.heads[0]
        assert not server.requests[0].header("Proxy-Authorization")  # the credentials stay with the proxy
        assert server.requests[0].target == "/v1/chat/completions"

    run(main())


def test_all_proxy_and_lowercase_wins(monkeypatch):
    async def main():
        async with Server() as server, Proxy() as proxy:
            monkeypatch.setenv("all_proxy", f"127.0.0.1:{proxy.port}")  # no scheme: http://
            monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
            http = client(server.url())
            await http.post_json("/x", {})
            await http.aclose()
        assert proxy.request_lines() == [f"POST http://127.0.0.1:{server.port}/v1/x HTTP/1.1"]

    run(main())


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "localhost,127.0.0.0/8", "*", "example.com, 127.0.0.1:{port}"])
def test_no_proxy_covering_the_host_goes_direct(no_proxy, monkeypatch):
    async def main():
        async with Server() as server:
            monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
            monkeypatch.setenv("NO_PROXY", no_proxy.format(port=server.port))
            http = client(server.url())
            assert (await http.post_json("/x", {}))["path"] == "/v1/x"
            await http.aclose()
            local = client(f"http://localhost:{server.port}/v1")
            if "localhost" in no_proxy or no_proxy == "*":
                await local.post_json("/x", {})
            else:
                with pytest.raises(EndpointError, match="connection error"):  # localhost is not 127.0.0.1 to NO_PROXY
                    await local.post_json("/x", {})
            await local.aclose()

    run(main())


@pytest.mark.parametrize(
    "var,value",
    [
        ("HTTPS_PROXY", "socks5://user:hunter2@127.0.0.1:1080"),
        ("https_proxy", "https://user:hunter2@proxy.example:443"),
        ("ALL_PROXY", "socks5h://user:hunter2@127.0.0.1:1080"),
    ],
)
def test_unsupported_proxy_refused_clearly(var, value, monkeypatch):
    monkeypatch.setenv(var, value)
    with pytest.raises(ValueError) as caught:
        JsonHttpClient("https://api.example.com/v1", headers={}, timeout_s=1)
    message = str(caught.value)
    assert var in message and "NO_PROXY" in message and "trust_env=False" in message and "hunter2" not in message
    JsonHttpClient("https://api.example.com/v1", headers={}, timeout_s=1, trust_env=False)
    monkeypatch.setenv("no_proxy", ".example.com")
    JsonHttpClient("https://api.example.com/v1", headers={}, timeout_s=1)


@pytest.mark.parametrize(
    "no_proxy,host,port,covered",
    [
        ("example.com", "example.com", 443, True),
        ("example.com", "api.example.com", 443, True),
        (".example.com", "example.com", 443, True),
        ("*.example.com", "api.example.com", 443, True),
        ("example.com", "notexample.com", 443, False),
        ("EXAMPLE.com:443", "example.com", 443, True),
        ("example.com:8443", "example.com", 443, False),
        ("10.0.0.0/8", "10.1.2.3", 80, True),
        ("10.0.0.0/8", "11.1.2.3", 80, False),
        ("::1", "::1", 80, True),
        ("[::1]:80", "::1", 80, True),
        ("[::1]:81", "::1", 80, False),
        ("fd00::/8", "fd12::1", 80, True),
        ("localhost", "127.0.0.1", 80, False),
        ("https://example.com", "example.com", 443, True),
        ("http://example.com", "example.com", 443, False),
        (" , *", "anything", 1, True),
        ("", "example.com", 443, False),
    ],
)
def test_no_proxy_matching(no_proxy, host, port, covered):
    assert no_proxy_covers(no_proxy, "https", host, port) is covered


# ---- the caller's httpx client: ChatClient's other transport, the same retries ------------------
def via_httpx(test):
    """Run `test(http)` with ChatClient's httpx transport over a fresh httpx.AsyncClient."""
    import httpx

    from rollout.core.clients import _HttpxTransport

    async def main(url, **kwargs):
        async with httpx.AsyncClient() as caller:
            http = _HttpxTransport(
                caller, url, headers={"Authorization": "Bearer sk-test"}, **{"timeout_s": 5.0, "max_retries": 0, **kwargs}
            )
            return await test(http)

    return main


@pytest.mark.parametrize("status", [429, 503])
def test_httpx_transport_retries_retryable_statuses_with_backoff(status, monkeypatch):
    waits = []
    monkeypatch.setattr(retry, "backoff_s", lambda attempt: waits.append(attempt) or 0.001)

    async def main():
        async with Server(lambda r: answer(status) if r.index < 2 else echo(r)) as server:
            out = await via_httpx(lambda http: http.post_json("/x", {"a": 1}))(server.url(), max_retries=2)
        assert out["body"] == {"a": 1} and len(server.requests) == 3 and waits == [0, 1]

    run(main())


@pytest.mark.parametrize("header,requests", [("Retry-After: 0.03", 2), ("Retry-After: 1000", 1), ("x-should-retry: false", 1)])
def test_httpx_transport_honours_retry_after_and_should_retry(header, requests, monkeypatch):
    monkeypatch.setattr(retry, "backoff_s", lambda attempt: pytest.fail("backoff used instead of Retry-After"))

    async def post(http):
        try:
            return await http.post_json("/x", {})
        except EndpointError as e:
            return e

    async def main():
        async with Server(lambda r: answer(429, headers=(header,)) if r.index == 0 else echo(r)) as server:
            await via_httpx(post)(server.url(), max_retries=1)
        assert len(server.requests) == requests

    run(main())


def test_httpx_transport_4xx_not_retried_timeouts_and_refusals_named():
    async def never(request):
        await asyncio.Event().wait()

    async def expect(http, match):
        with pytest.raises(EndpointError, match=match):
            await http.post_json("/x", {})

    async def main():
        async with Server(lambda r: answer(400, b'{"error": {"message": "bad body"}}')) as server:
            await via_httpx(lambda http: expect(http, "HTTP 400: bad body"))(server.url(), max_retries=2)
            assert len(server.requests) == 1
        async with Server(never) as server:
            await via_httpx(lambda http: expect(http, "timed out after 0.05s"))(server.url(), max_retries=1, timeout_s=0.05)
            assert len(server.requests) == 2
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"  # bound, not listening: refused
            await via_httpx(lambda http: expect(http, "connection error: ConnectError"))(url, max_retries=1)

    run(main())


def test_a_gate_holds_the_request_until_it_opens():
    """`gate` is awaited just before the request is written: nothing reaches the server while it
    holds, and a pooled connection the server closed meanwhile is replaced."""

    async def main():
        opened = asyncio.Event()

        async def gate():
            await opened.wait()

        async with Server(lambda r: (echo(r), True)) as server:  # closes each connection after answering
            http = client(server.url())
            await http.post_json("/x", {"n": 1})
            held = asyncio.ensure_future(http.post_json("/x", {"n": 2}, gate=gate))
            await asyncio.sleep(0.2)
            assert len(server.requests) == 1 and not held.done()
            opened.set()
            out = await held
            await http.aclose()
        assert out["body"] == {"n": 2} and out["conn"] == 1

    run(main())
