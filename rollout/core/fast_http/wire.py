"""HTTP/1.1 on the wire for `JsonHttpClient`: request heads (header names and values checked,
merged case-insensitively), and answers read off a stream (status line, headers, bodies framed
by Content-Length, chunked or EOF, gzip/deflate decoded)."""

from __future__ import annotations

import asyncio
import functools
import re
import zlib
from urllib.parse import quote

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
PATH_SAFE = "/%:@!$&'()*+,;=~?"


class ProtocolError(ValueError):
    """The server's answer is not valid HTTP/1.1 (retried like a broken connection)."""


# ---- requests ----------------------------------------------------------------------------------
def merge_headers(base: dict[str, tuple[str, str]], extra: dict) -> dict[str, tuple[str, str]]:
    """`base` (lowercase name -> (name, value)) updated with `extra`, checked (see module doc)."""
    out = dict(base)
    for name, value in extra.items():
        if not isinstance(name, str) or not _TOKEN.match(name):
            shown = repr(name)[:40] if isinstance(name, str) else type(name).__name__
            raise ValueError(
                f"HTTP header name {shown} is not a valid header name (no CR, LF, NUL, spaces or ':'); refusing to send it"
            )
        if not isinstance(value, str):
            if value is None or not value:  # None, openai's Omit / NotGiven: no such header
                out.pop(name.lower(), None)
                continue
            raise TypeError(f"HTTP header {name!r}: the value must be a str, not {type(value).__name__}")
        if _BAD_VALUE.search(value):
            raise ValueError(
                f"HTTP header {name!r}: its value contains a control character (CR, LF, NUL, ...); "
                f"refusing to send it (value not shown: it may be a secret)"
            )
        if not value.isascii():
            raise ValueError(f"HTTP header {name!r}: its value is not ASCII; refusing to send it (value not shown)")
        out[name.lower()] = (name, value)
    return out


def head_bytes(headers: dict[str, tuple[str, str]], fixed: dict[str, tuple[str, str]]) -> bytes:
    """The header lines (checked already); `fixed` ones replace the caller's, and the framing is ours."""
    merged = {k: v for k, v in headers.items() if k not in ("content-length", "transfer-encoding")}
    merged.update(fixed)
    return "".join(f"{name}: {value}\r\n" for name, value in merged.values()).encode("ascii")


@functools.lru_cache(maxsize=64)
def quoted_path(path: str) -> str:
    return quote(path, safe=PATH_SAFE)


# ---- responses ---------------------------------------------------------------------------------
async def read_head(reader: asyncio.StreamReader) -> tuple[int, str, dict[str, str]]:
    """(status, HTTP version, headers with lowercase names; repeated ones joined by ", ") of
    the final answer (interim 1xx answers skipped)."""
    while True:
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/") or not code.isdigit() or rest[3:4] not in ("", " "):
            raise ProtocolError(f"malformed status line {lines[0][:80]!r}")
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


async def read_body(reader: asyncio.StreamReader, status: int, version: str, headers: dict[str, str]) -> tuple[bool, bytes]:
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
            raise ProtocolError(f"invalid Content-Length {headers['content-length'][:40]!r}")
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
            raise ProtocolError(f"invalid chunk size {size[:20]!r}")
        n = int(size, 16)
        if n == 0:
            break
        chunks.append(await reader.readexactly(n))
        if await reader.readexactly(2) != b"\r\n":
            raise ProtocolError("a chunk is not followed by CRLF")
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
                raise ProtocolError(f"unsupported content coding {coding[:20]!r}")
    except zlib.error as e:
        raise ProtocolError(f"corrupt {'/'.join(codings)} body: {e}") from None
    return body
