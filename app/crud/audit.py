"""Tenant audit log writes and reads; the chain trigger fills id, ts, prev_hash and hash."""

from __future__ import annotations

from typing import Any

from app.db.audit import canonical_detail
from app.models.db import AuditLog


async def record(db: Any, actor: str, action: str, target: str, detail: dict[str, Any] | None = None) -> None:
    await db.execute_query(
        "INSERT INTO audit_log (actor, action, target, detail) VALUES ($1, $2, $3, $4)",
        [actor, action, target, canonical_detail(detail)],
    )


async def list_entries(db: Any, limit: int, after_id: int | None) -> tuple[list[AuditLog], int | None]:
    qs = AuditLog.all()
    if after_id is not None:
        qs = qs.filter(id__gt=after_id)
    rows = await qs.order_by("id").limit(limit + 1).using_db(db)
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)
