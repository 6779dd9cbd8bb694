"""Read-only views for the lab-admin page: every tenant's audit log merged newest first, and the edge's
latest refusals. Why here and not in the tenant routes: a lab-admin follows the attack/defence demo
across all tenants, while a tenant-admin sees only their own tenant's log (/tenant/audit)."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.core.problems import Problem

EDGE_REFUSALS_FILE = "edge-refusals.json"
"""File name of the edge's refusal log under lab.paths.logs (edge role `edge_refusals_log`; a test keeps
the two equal): one JSON object per refusal the edge answered itself (WAF, limits, unknown paths)."""

REFUSAL_TAIL_BYTES = 262_144
"""Only the end of the log is read: the page shows the latest refusals, and a large log must not cost a
large read per request (OWASP API4:2023)."""

_CURSOR = re.compile(r"^v1:(\d{1,19})\.(\d{1,19})$")


def encode_audit_cursor(ts: datetime, row_id: int) -> str:
    """(ts in microseconds, id) of the last row shown: the next page starts strictly below it."""
    us = int(ts.timestamp() * 1_000_000)
    return base64.urlsafe_b64encode(f"v1:{us}.{row_id}".encode()).decode().rstrip("=")


def decode_audit_cursor(cursor: str | None) -> tuple[datetime, int] | None:
    """Malformed cursors are a 422 (the route's pattern already bounds their length and alphabet)."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (ValueError, UnicodeError):
        raise Problem(422, "validation", "invalid cursor") from None
    m = _CURSOR.match(raw)
    if not m:
        raise Problem(422, "validation", "invalid cursor")
    us, row_id = int(m.group(1)), int(m.group(2))
    if us > 253_402_300_799_000_000 or row_id > 2**63 - 1:
        raise Problem(422, "validation", "invalid cursor")
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC), row_id


AUDIT_PAGE_SQL = (
    "SELECT id, ts, actor, action, target, detail FROM audit_log{where} ORDER BY ts DESC, id DESC LIMIT {n}"
)


async def merged_audit(
    open_tenant: Callable[[str], AbstractAsyncContextManager[Any]],
    tenants: list[str],
    limit: int,
    after: tuple[datetime, int] | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Every tenant's audit log merged newest first by (ts, id), keyset-paged: the newest `limit + 1`
    rows below the cursor from each tenant (each read under that tenant's own role, as the app always
    reads tenant data), merged, cut to `limit`. Two tenants' rows with the same microsecond AND the same
    id would tie; the cursor then skips the second one."""
    rows: list[dict[str, Any]] = []
    where = " WHERE (ts, id) < ($1, $2)" if after else ""
    sql = AUDIT_PAGE_SQL.format(where=where, n=int(limit) + 1)
    for tenant in tenants:
        async with open_tenant(tenant) as db:
            found = await db.execute_query_dict(sql, list(after) if after else None)
        rows += [{**r, "scope": tenant} for r in found]
    rows.sort(key=lambda r: (r["ts"], r["id"]), reverse=True)
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = encode_audit_cursor(rows[-1]["ts"], rows[-1]["id"]) if more and rows else None
    return rows, nxt


def _refusal(line: str) -> dict[str, Any] | None:
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, dict) or not obj.get("request_id"):
        return None
    try:
        status = int(obj.get("status", 0))
    except (TypeError, ValueError):
        return None
    return {
        "ts": str(obj.get("ts", "")),
        "request_id": str(obj["request_id"])[:128],
        "status": status,
        "cause": refusal_cause(status),
        "method": str(obj.get("method", ""))[:16],
        "path": str(obj.get("path", ""))[:512],
        "client": str(obj.get("client", ""))[:64],
    }


def refusal_cause(status: int) -> str:
    """The problem type the edge itself answers with for this status (edge/snippets/seclab-problems.conf)."""
    return {400: "validation", 403: "waf-blocked", 404: "not-found", 405: "method-not-allowed",
            413: "payload-too-large", 429: "rate-limited"}.get(status, "upstream-unavailable" if status >= 500 else "validation")


def _tail(path: Path, size: int) -> list[str]:
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            end = f.tell()
            f.seek(max(0, end - size))
            data = f.read()
    except FileNotFoundError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    return lines[1:] if end > size else lines  # the first line of a partial read may be cut


async def latest_refusals(logs_dir: str, limit: int) -> list[dict[str, Any]]:
    """The newest `limit` refusals of the edge's refusal log, newest first (a missing log: none yet)."""
    lines = await asyncio.to_thread(_tail, Path(logs_dir) / EDGE_REFUSALS_FILE, REFUSAL_TAIL_BYTES)
    out: list[dict[str, Any]] = []
    for line in reversed(lines):
        item = _refusal(line)
        if item is not None:
            out.append(item)
            if len(out) >= limit:
                break
    return out
