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
average near 5. End to end, aiohttp in its place (rollout/bench/aiohttp_transport.py) costs
1.04-1.19x the rollout CPU per completion and 0.91-0.93x the pool's throughput at 64 episodes in
flight (docs/performance.md, P2 and P7; the bench measures both on every run).

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

Retries follow openai's client (retry.py, shared with `ChatClient`'s httpx transport):
connection errors, timeouts and HTTP 408/409/429/5xx are retried `max_retries` times with
exponential backoff or after the server's Retry-After; other failures raise `EndpointError`
(status and the server's message; callers redact keys). `max_concurrency` > 0 caps the
requests in flight.

Modules: client.py (`JsonHttpClient`: connections, the pool, TLS, the CONNECT tunnel),
wire.py (request heads, reading answers), proxy.py (proxies from the environment),
retry.py (retries and `EndpointError`).
"""

from rollout.core.fast_http.client import CONNECTION_ERRORS, JsonHttpClient
from rollout.core.fast_http.proxy import no_proxy_covers
from rollout.core.fast_http.retry import MAX_RETRY_AFTER_S, EndpointError, backoff_s, retryable_status, with_retries

__all__ = [
    "CONNECTION_ERRORS",
    "MAX_RETRY_AFTER_S",
    "EndpointError",
    "JsonHttpClient",
    "backoff_s",
    "no_proxy_covers",
    "retryable_status",
    "with_retries",
]
