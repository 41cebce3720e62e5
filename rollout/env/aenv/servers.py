"""Local aenv servers: aenv's own MCP server running this project's env module on loopback.

`LocalAenvServer.start(env_vars)` runs `python -m aenv.main rollout/env/aenv/module --host
127.a.b.c --port 8081` (the aenv SDK's client side fixes the port at 8081, so each server
gets its own loopback address), waits until it answers, and `stop()` ends it. A server
dies with the process that started it (PR_SET_PDEATHSIG), so a killed worker leaks none.
Its output goes to an unlinked temporary file (the name is removed as soon as the child
holds it open; this process keeps an fd to read the tail for error messages), so nothing
stays in the temporary directory when either process dies, however it dies.
"""

from __future__ import annotations

import asyncio
import ctypes
import itertools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from rollout.core.failures import EpisodeFailure, FailureClass, redact
from rollout.core.process_env import child_env

ENV_DIR = Path(__file__).resolve().parent / "module"
PORT = 8081  # fixed by the aenv SDK's client
_SECRET_VARS = ("OPENAI_API_KEY", "AENV_API_KEY")
_counter = itertools.count()


def _die_with_parent() -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _free_loopback_address() -> str:
    """A 127.x.y.z address whose port 8081 is free (x from the pid, y.z from a counter)."""
    base = 20 + os.getpid() % 200
    for _ in range(2000):
        n = next(_counter)
        host = f"127.{base}.{(n // 250) % 250}.{n % 250 + 2}"
        with socket.socket() as s:
            try:
                s.bind((host, PORT))
            except OSError:
                continue
        return host
    raise EpisodeFailure(FailureClass.ENV_ERROR, "no free loopback address for an aenv server")


class LocalAenvServer:
    """One aenv server process on a private loopback address."""

    def __init__(self, host: str, process: subprocess.Popen, log, secrets: list[str]):
        self.host = host
        self.process = process
        self._log = log  # the server's stdout+stderr: an open file whose name is already unlinked
        self._secrets = secrets

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @classmethod
    async def start(cls, env_vars: dict[str, str], *, startup_timeout_s: float = 180.0) -> LocalAenvServer:
        """Start a server and wait until it serves. Raises EpisodeFailure(ENV_ERROR)."""
        env = {k: v for k, v in os.environ.items() if k not in _SECRET_VARS}
        env.update(child_env(env_vars))
        secrets = [v for k, v in env_vars.items() if k.endswith("API_KEY") and v]
        host = _free_loopback_address()
        log = tempfile.NamedTemporaryFile(prefix="aenv-server-", suffix=".log", delete=False)
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "aenv.main", str(ENV_DIR), "--host", host, "--port", str(PORT)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
                start_new_session=True,
            )
        except BaseException:
            log.close()
            raise
        finally:
            Path(log.name).unlink(missing_ok=True)  # the child and `log` keep the file alive
        server = cls(host, process, log, secrets)
        try:
            await server._wait_ready(startup_timeout_s)
        except BaseException:
            await server.stop()
            raise
        return server

    async def _wait_ready(self, timeout_s: float) -> None:
        """Ready = the server answers GET /functions/list (its env module is loaded by then)."""
        deadline = time.monotonic() + timeout_s
        url = f"http://{self.host}:{PORT}/functions/list"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EpisodeFailure(
                    FailureClass.ENV_ERROR, f"aenv server exited with {self.process.returncode}: {self.log_tail()}"
                )
            try:
                await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=2).read())
                return
            except OSError:
                await asyncio.sleep(0.2)
        raise EpisodeFailure(FailureClass.ENV_ERROR, f"aenv server on {self.host} not ready after {timeout_s}s")

    def log_tail(self, n: int = 1500) -> str:
        """The last `n` characters the server printed (keys redacted)."""
        try:
            fd = self._log.fileno()
            size = os.fstat(fd).st_size
            data = os.pread(fd, 4 * n, max(0, size - 4 * n))
        except (OSError, ValueError):
            return ""
        return redact(data.decode(errors="replace")[-n:], self._secrets)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    async def stop(self) -> None:
        """Terminate the server (its whole process group) and close its log."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            for _ in range(50):
                if self.process.poll() is not None:
                    break
                await asyncio.sleep(0.1)
            else:
                os.killpg(self.process.pid, signal.SIGKILL)
                await asyncio.to_thread(self.process.wait)
        self._log.close()
