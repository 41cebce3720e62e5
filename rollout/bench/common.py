"""What the bench rows share: the scripted model server in its own process, and episode configs for it.

`scripted_process(latency, policy)` starts `python -m rollout.scripted` on a free loopback
port and yields a `ScriptedProcess` (url, pid, its CPU seconds so far, completions served);
`scripted_server(...)` yields just the url. The server's CPU is never the rollout system's:
it is read from /proc/<pid>/stat, apart from the rollout process's own.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Optional

from rollout.core.config import load_config
from rollout.scripted import endpoints


@dataclass
class ScriptedProcess:
    url: str  # http://127.0.0.1:<port>/v1
    pid: int

    def cpu_s(self) -> float:
        """User + system CPU seconds the server process has used so far (all its threads)."""
        return process_cpu_s(self.pid)

    def completions(self) -> int:
        """Chat completions served so far (agent and user simulator)."""
        root = self.url.removesuffix("/v1")
        stats = json.loads(urllib.request.urlopen(root + "/admin/stats", timeout=10).read())
        return int(stats["agent"]) + int(stats["user"])


def process_cpu_s(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat (clock-tick resolution)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # after "pid (comm)": field 3 is fields[0]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def scripted_process(
    latency: float = 0.0,
    policy: str = "oracle",
    *,
    model: str = "qwen25",
    reasoning_parser: Optional[str] = None,
    reply_style: str = "plain",
    token_latency_ms: float = 0.0,
) -> Iterator[ScriptedProcess]:
    """The scripted model server in its own process (serving `model`'s template, answering with
    `reply_style`, parsing with `reasoning_parser`; `latency` seconds per completion and, for the
    policy, `token_latency_ms` per generated token), up and answering, until the block ends."""
    port = free_port()
    flags = [
        "--model",
        model,
        "--reply-style",
        reply_style,
        "--token-latency-ms",
        str(token_latency_ms),
        *(["--reasoning-parser", reasoning_parser] if reasoning_parser else []),
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "rollout.scripted", "--port", str(port), "--policy", policy, "--latency", str(latency), *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(url + "/models", timeout=1).read()
                break
            except OSError:
                time.sleep(0.2)
        yield ScriptedProcess(url, proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@contextmanager
def scripted_server(latency: float = 0.0, policy: str = "oracle") -> Iterator[str]:
    """`scripted_process`, yielding only its url."""
    with scripted_process(latency, policy) as server:
        yield server.url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def episode_config(url: str, *extra: str):
    """A RolloutConfig whose agent and user simulator both talk to the scripted server at `url`."""
    return load_config([*endpoints.overrides(url), "llm.max_retries=0", *extra])


def rss_mib(pid: str | int = "self") -> float:
    """Resident set size of a process now, MiB."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib(pid: str | int = "self") -> float:
    """The process's RSS high-water mark (VmHWM), MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc status")
