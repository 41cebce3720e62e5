"""A live progress line for sweeps: done/total, episodes/s, running mean reward, failures."""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO

from rollout.sweep.records import SweepRecord


class Progress:
    """Updates one stderr line in place on a terminal; prints a line every `every_s` otherwise."""

    def __init__(
        self, total: int, *, done: int = 0, enabled: bool = True, stream: Optional[TextIO] = None, every_s: float = 10.0
    ):
        self.total = total
        self.done = done
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self.started = time.monotonic()
        self.finished_here = 0
        self.reward_sum = 0.0
        self.scored = 0
        self.failed = 0
        self.retries = 0
        self._last = 0.0
        self._tty = self.stream.isatty()

    def record(self, record: SweepRecord) -> None:
        self.done += 1
        self.finished_here += 1
        if record.ok:
            self.scored += 1
            self.reward_sum += float(record.reward)
        else:
            self.failed += 1
        self._render()

    def retry(self) -> None:
        self.retries += 1
        self._render()

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.finished_here / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        mean = f"{self.reward_sum / self.scored:.3f}" if self.scored else "-"
        return (
            f"[{self.done}/{self.total}] {self.rate:.2f} eps/s  mean reward {mean}  failed {self.failed}  retries {self.retries}"
        )

    def _render(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if self._tty:
            if force or now - self._last > 0.1:
                self.stream.write("\r\033[K" + self.line())
                self.stream.flush()
                self._last = now
        elif force or now - self._last >= self.every_s:
            self.stream.write(self.line() + "\n")
            self.stream.flush()
            self._last = now

    def close(self) -> None:
        self._render(force=True)
        if self.enabled and self._tty:
            self.stream.write("\n")
            self.stream.flush()
