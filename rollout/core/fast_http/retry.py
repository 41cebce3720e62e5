"""Retries as openai's client does them, for both transports of `ChatClient`.

`with_retries(attempt, ...)` runs `attempt()` (one HTTP exchange: status, headers, body) under
a timeout and returns the decoded JSON of a 2xx answer. Connection errors (the exception types
the caller names), timeouts and HTTP 408/409/429/5xx are retried `max_retries` times with
exponential backoff (0.5 s doubling, at most 8 s, with jitter), or after the server's
Retry-After (-ms) when it is at most 120 s (longer: no retry); `x-should-retry: true|false`
overrides the status. Anything else raises `EndpointError` (status and the server's message;
callers redact keys). Any other exception `attempt` raises propagates at once.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Optional

RETRY_STATUS = {408, 409, 429}
INITIAL_BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0
MAX_RETRY_AFTER_S = 120.0  # openai's MAX_RETRY_AFTER_DELAY: a longer Retry-After is not waited for


class EndpointError(Exception):
    """The endpoint failed: an HTTP error status (`status`), a broken connection or a timeout (`status` None)."""

    def __init__(self, message: str, status: Optional[int] = None):
        super().__init__(message)
        self.status = status

    @classmethod
    def from_response(cls, status: int, body: bytes) -> EndpointError:
        """The error for an HTTP error answer: its status and the server's message."""
        return cls(f"HTTP {status}: {error_message(body)}", status)


def retryable_status(status: int) -> bool:
    """Statuses openai's client retries: 408, 409, 429 and 5xx."""
    return status in RETRY_STATUS or status >= 500


def backoff_s(attempt: int) -> float:
    """Seconds to wait before retry `attempt + 1` (INITIAL_BACKOFF_S doubling, at most MAX_BACKOFF_S, with jitter)."""
    return min(MAX_BACKOFF_S, INITIAL_BACKOFF_S * 2**attempt) * (1 - 0.25 * random.random())


Exchange = Callable[[], Awaitable[tuple[int, Mapping[str, str], bytes]]]


async def with_retries(
    attempt: Exchange, *, max_retries: int, timeout_s: float, connection_errors: tuple[type[BaseException], ...]
) -> Any:
    """The decoded JSON answer of `attempt`, retried as the module doc says. `headers` of an
    exchange must answer `.get` for lowercase names (a dict with lowercase keys, httpx's Headers)."""
    for n in range(max_retries + 1):
        delay = None
        try:
            async with asyncio.timeout(timeout_s):
                status, headers, body = await attempt()
        except TimeoutError:
            error = EndpointError(f"request timed out after {timeout_s}s")
        except connection_errors as e:
            error = EndpointError(f"connection error: {type(e).__name__}: {e}")
        else:
            if status < 300:
                try:
                    return json.loads(body)
                except ValueError:
                    raise EndpointError(f"HTTP {status}: the body is not JSON: {body[:200]!r}", status) from None
            error = EndpointError.from_response(status, body)
            delay = retry_after_s(headers)
            if not should_retry(status, headers, delay):
                raise error
        if n == max_retries:
            raise error
        await asyncio.sleep(delay if delay is not None and 0 < delay <= MAX_RETRY_AFTER_S else backoff_s(n))
    raise AssertionError("unreachable")


def retry_after_s(headers: Mapping[str, str]) -> Optional[float]:
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


def should_retry(status: int, headers: Mapping[str, str], retry_after: Optional[float]) -> bool:
    if retry_after is not None and retry_after > MAX_RETRY_AFTER_S:
        return False
    flag = headers.get("x-should-retry")
    if flag in ("true", "false"):
        return flag == "true"
    return retryable_status(status)


def error_message(body: bytes) -> str:
    try:
        data = json.loads(body)
        error = data.get("error") if isinstance(data, dict) else None
        message = error.get("message") if isinstance(error, dict) else (error or data)
        return str(message)[:500]
    except ValueError:
        return body[:500].decode(errors="replace")
