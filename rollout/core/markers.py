"""Generated parts of documents: the text between a pair of HTML-comment markers
(`<!-- NAME:start -->` ... `<!-- NAME:end -->`), read and replaced, the rest kept as it is."""

from __future__ import annotations

from typing import Optional


def markers(name: str) -> tuple[str, str]:
    """The start and end markers named `name` (e.g. "bench-table")."""
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def between_markers(text: str, name: str) -> Optional[str]:
    """The text between the markers (ending with one newline), or None if `text` lacks them."""
    start, end = markers(name)
    if start not in text or end not in text:
        return None
    return text.split(start, 1)[1].split(end, 1)[0].strip("\n") + "\n"


def replace_between_markers(text: str, name: str, body: str) -> str:
    """`text` with the part between the markers replaced by `body`. ValueError without them."""
    start, end = markers(name)
    if between_markers(text, name) is None:
        raise ValueError(f"no {start} ... {end} markers")
    head, rest = text.split(start, 1)
    return head + start + "\n" + body + end + rest.split(end, 1)[1]
