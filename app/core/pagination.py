"""Opaque keyset cursors.

Why keyset, not OFFSET: constant cost per page whatever the depth (OWASP API4:2023). The cursor is
opaque to clients but not secret: it only positions a query that is already filtered to rows the
caller may see, so a forged cursor reveals nothing new. A malformed cursor is a 422, never a 500.
"""

from __future__ import annotations

import base64
import re

from app.core.problems import Problem

_PREFIX = "v1:"
_MAX_LEN = 64
_CURSOR_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if len(cursor) > _MAX_LEN or not _CURSOR_RE.match(cursor):
        raise Problem(422, "validation", "invalid cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (ValueError, UnicodeError):
        raise Problem(422, "validation", "invalid cursor") from None
    if not raw.startswith(_PREFIX) or not raw[len(_PREFIX):].isdigit():
        raise Problem(422, "validation", "invalid cursor")
    value = int(raw[len(_PREFIX):])
    if value > 2**63 - 1:
        raise Problem(422, "validation", "invalid cursor")
    return value
