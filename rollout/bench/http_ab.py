"""HTTP A/B: the client CPU of one chat-completions request through rollout.core.fast_http and through
the usual Python clients, in the same run.

Each request POSTs a realistic ~36 KB chat-completions body (tau2's airline agent system prompt
and tool schemas, from `rollout.env.agent_view`, plus a dozen messages with real airline tool
results) to a minimal keep-alive HTTP/1.1 server in a SEPARATE process (its CPU is not the
client's; it answers every request with the same ~0.8 KB tool-call completion), and decodes the
JSON answer. Every client starts from the same dict:

- `fast_http`: `rollout.core.fast_http.JsonHttpClient.post_json` (json.dumps, send, parse);
- `httpx`: `httpx.AsyncClient.post(content=json.dumps(body).encode())`, then `.json()`;
- `aiohttp`: `aiohttp.ClientSession.post(data=...)`, then `json.loads(await resp.read())`;
- `openai`: `AsyncOpenAI(...).chat.completions.create(**body)` (openai's request transform, its
  default httpx transport and its pydantic `ChatCompletion`) -- the path a stock client takes.

At each in-flight level (1 and 16: that many concurrent workers over one client), per client:
a warm-up, then a batch of requests (`SHARE`: more for the cheap clients, fewer for openai) timed by
`time.process_time()` (the client process's CPU, all threads) and `time.perf_counter()` (wall). The clients are measured in turn within each
repetition (A, B, C, D, A, B, ...) so drift hits them alike; the row reports the median over
`reps`: ms of client CPU per request, the ratio to fast_http, and requests per second (wall,
sensitive to whatever else the machine runs), plus the server's own CPU per request for
context (`server_cpu_ms`, from /proc in clock ticks: coarse).

`python -m rollout.bench.http_ab` runs it and prints the row as JSON (`--quick` for a smoke run).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from rollout.bench.common import free_port, process_cpu_s
from rollout.core.process_env import apply_defaults

CLIENTS = ("fast_http", "httpx", "aiohttp", "openai")
# requests per batch relative to `requests`: the cheap clients get more (a steadier figure), openai
# (~30x the CPU) fewer, to keep the run under a minute
SHARE = {"fast_http": 2.0, "httpx": 1.0, "aiohttp": 2.0, "openai": 0.5}
API_KEY = "sk-bench-0123456789"

ANSWER = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "bench-model",
    "choices": [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "logprobs": None,
            "message": {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [
                    {
                        "id": "call_0123456789abcdef",
                        "type": "function",
                        "function": {"name": "get_reservation_details", "arguments": json.dumps({"reservation_id": "XEHM4B"})},
                    }
                ],
            },
        }
    ],
    "usage": {"prompt_tokens": 9120, "completion_tokens": 24, "total_tokens": 9144},
    "system_fingerprint": "fp_bench",
}


# ---- the server (its own process) -----------------------------------------------------------
class _AnswerProtocol(asyncio.Protocol):
    """Keep-alive HTTP/1.1: every request (Content-Length framed) gets the same JSON answer."""

    def __init__(self, reply: bytes):
        self._reply = reply
        self._buffer = bytearray()

    def connection_made(self, transport):
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buffer[:end]).lower()
            at = head.find(b"\r\ncontent-length:")
            length = int(head[at + 17 : head.find(b"\r\n", at + 2) if head.find(b"\r\n", at + 2) > 0 else None]) if at >= 0 else 0
            if len(self._buffer) < end + 4 + length:
                return
            del self._buffer[: end + 4 + length]
            self._transport.write(self._reply)


def serve(port: int) -> None:
    body = json.dumps(ANSWER).encode()
    reply = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)) + body

    async def main():
        server = await asyncio.get_running_loop().create_server(lambda: _AnswerProtocol(reply), "127.0.0.1", port, backlog=256)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def _start_server() -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "rollout.bench.http_ab", "--serve", str(port)])
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("the A/B server did not start") from None
            time.sleep(0.05)


# ---- the request ----------------------------------------------------------------------------
def chat_body(domain: str = "airline") -> dict:
    """A chat-completions body as the agent sends it mid-episode: tau2's system prompt and tool
    schemas, then a user turn and assistant tool calls with the environment's real answers."""
    from rollout.env.agent_view import agent_view
    from rollout.env.domains import load_domain

    prompt, tools = agent_view(domain, False, None)
    assets = load_domain(domain)
    env = assets.new_environment(False)
    reservation_id = next(
        a.arguments["reservation_id"]
        for t in assets.tasks.values()
        for a in (t.evaluation_criteria.actions or [])
        if a.name == "get_reservation_details"
    )
    messages: list[dict] = [{"role": "system", "content": prompt}]
    calls = 0

    def call(name: str, **arguments) -> Any:
        nonlocal calls
        calls += 1
        call_id = f"call_{calls:04d}"
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}
                ],
            }
        )
        result = env.make_tool_call(name, **arguments)
        messages.append({"role": "tool", "tool_call_id": call_id, "content": env.to_json_str(result)})
        return result

    reservation = call("get_reservation_details", reservation_id=reservation_id)
    messages.insert(
        1,
        {
            "role": "user",
            "content": f"Hi! I need to change a flight on reservation {reservation_id}; my user id is {reservation.user_id}.",
        },
    )
    user = call("get_user_details", user_id=reservation.user_id)
    for other in [r for r in user.reservations if r != reservation_id][:3]:
        call("get_reservation_details", reservation_id=other)
    flight = reservation.flights[0]
    messages.append(
        {"role": "assistant", "content": "I found your reservations. Which flight would you like to move, and to which date?"}
    )
    messages.append({"role": "user", "content": f"The {flight.flight_number} one, to the day after, same cabin please."})
    call("search_direct_flight", origin=flight.origin, destination=flight.destination, date=flight.date)
    call("search_onestop_flight", origin=flight.origin, destination=flight.destination, date=flight.date)
    return {
        "model": "bench-model",
        "messages": messages,
        "tools": list(tools),
        "tool_choice": "auto",
        "temperature": 1.0,
        "max_tokens": 1024,
    }


# ---- the clients ----------------------------------------------------------------------------
async def _clients(url: str) -> dict[str, tuple[Callable, Callable]]:
    """name -> (post(body) -> decoded answer, close())."""
    import aiohttp
    import httpx
    from openai import AsyncOpenAI

    from rollout.core.fast_http import JsonHttpClient

    headers = {"Authorization": f"Bearer {API_KEY}"}
    fast = JsonHttpClient(url, headers=headers, timeout_s=60, max_retries=0)
    hx = httpx.AsyncClient(base_url=url, headers=headers, timeout=60)
    session = aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=100))
    oa = AsyncOpenAI(base_url=url, api_key=API_KEY, max_retries=0, timeout=60)

    async def post_fast(body):
        return await fast.post_json("/chat/completions", body)

    async def post_httpx(body):
        response = await hx.post(
            "/chat/completions",
            content=json.dumps(body, separators=(",", ":")).encode(),
            headers={"Content-Type": "application/json"},
        )
        response.raise_for_status()
        return response.json()

    async def post_aiohttp(body):
        async with session.post(
            url + "/chat/completions",
            data=json.dumps(body, separators=(",", ":")).encode(),
            headers={"Content-Type": "application/json"},
        ) as response:
            response.raise_for_status()
            return json.loads(await response.read())

    async def post_openai(body):
        return await oa.chat.completions.create(**body)

    return {
        "fast_http": (post_fast, fast.aclose),
        "httpx": (post_httpx, hx.aclose),
        "aiohttp": (post_aiohttp, session.close),
        "openai": (post_openai, oa.close),
    }


async def _measure(post: Callable, body: dict, in_flight: int, requests: int) -> tuple[float, float]:
    """(ms of process CPU per request, requests per second) for `requests` requests, `in_flight` at a time."""
    per_worker = max(1, requests // in_flight)

    async def worker():
        for _ in range(per_worker):
            await post(body)

    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    n = per_worker * in_flight
    return cpu / n * 1000, n / wall


async def _run(url: str, body: dict, in_flight: tuple[int, ...], requests: dict[int, int], reps: int, server_pid: int) -> dict:
    clients = await _clients(url)
    answer = await clients["fast_http"][0](body)
    assert answer["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_reservation_details"
    completion = await clients["openai"][0](body)
    assert completion.choices[0].message.tool_calls[0].function.name == "get_reservation_details"
    out: dict[str, Any] = {}
    try:
        for level in in_flight:
            for name in CLIENTS:  # warm: connections opened, caches filled
                await _measure(clients[name][0], body, level, 2 * level)
            counts = {name: max(level, int(requests[level] * SHARE[name])) // level * level for name in CLIENTS}
            cpu: dict[str, list[float]] = {name: [] for name in CLIENTS}
            rps: dict[str, list[float]] = {name: [] for name in CLIENTS}
            server_ms: list[float] = []
            for _ in range(reps):
                for name in CLIENTS:
                    server_before = process_cpu_s(server_pid)
                    ms, per_s = await _measure(clients[name][0], body, level, counts[name])
                    cpu[name].append(ms)
                    rps[name].append(per_s)
                    server_ms.append((process_cpu_s(server_pid) - server_before) / counts[name] * 1000)
            median = {name: round(statistics.median(v), 3) for name, v in cpu.items()}
            out[str(level)] = {
                "requests": counts,
                "cpu_ms": median,
                "ratio_to_fast_http": {name: round(median[name] / median["fast_http"], 2) for name in CLIENTS},
                "req_per_s": {name: round(statistics.median(v)) for name, v in rps.items()},
                "cpu_ms_reps": {name: [round(x, 3) for x in v] for name, v in cpu.items()},
                "server_cpu_ms": round(statistics.median(server_ms), 3),
            }
    finally:
        for _, close in clients.values():
            await close()
    return out


def bench_http_ab(*, in_flight: tuple[int, ...] = (1, 16), requests: int = 192, reps: int = 3) -> dict:
    """The HTTP A/B row (see module doc): ms of client CPU per request and requests/s, per client and level."""
    start = time.perf_counter()
    body = chat_body()
    data = json.dumps(body, separators=(",", ":")).encode()
    proc, port = _start_server()
    try:
        per_level = {level: max(level, requests if level > 1 else requests * 2 // 3) for level in in_flight}
        levels = asyncio.run(_run(f"http://127.0.0.1:{port}/v1", body, in_flight, per_level, reps, proc.pid))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return {
        "what": "client CPU per chat-completions POST of a ~36 KB airline body to a local server in its own "
        "process, answer decoded; fast_http vs httpx, aiohttp and openai's AsyncOpenAI, same run, interleaved",
        "body_bytes": len(data),
        "messages": len(body["messages"]),
        "tools": len(body["tools"]),
        "answer_bytes": len(json.dumps(ANSWER)),
        "reps": reps,
        "in_flight": levels,
        "versions": _versions(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "seconds": round(time.perf_counter() - start, 1),
    }


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("httpx", "aiohttp", "openai", "httpx2"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def main(argv=None) -> None:
    apply_defaults()  # an entry point (also of the A/B server process)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the server process
    p.add_argument("--quick", action="store_true", help="a smoke run: few requests, one repetition")
    args = p.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return
    row = bench_http_ab(requests=32, reps=1) if args.quick else bench_http_ab()
    print(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
