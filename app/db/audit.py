"""Hash-chained audit log: the canonical row form and an independent verifier.

Why a chain: grants and triggers stop the app's roles from rewriting history; the chain makes a
rewrite by anyone with more power (owner, superuser, disk) *detectable* (ASVS 4.0.3 V7.3.3 log
integrity, OWASP Top 10 2021 A09). Limits: deleting the newest rows leaves a valid shorter chain;
anchor the head hash outside the database (e.g. in the lab report) to catch that.

Canonical text (must match the trigger in app/db/migrations/0001_chat.sql):
    f(id)|f(ts)|f(actor)|f(action)|f(target)|f(detail)|f(prev_hash), f(v) = f"{len(v)}:{v}",
    ts as UTC "YYYY-MM-DDTHH:MM:SS.ffffffZ"; SHA-256 hex over the UTF-8 bytes; genesis prev_hash 64 zeros.
Length prefixes make the form unambiguous whatever characters a field holds.

Why the trigger SQL is written twice, in app/db/migrations/0001_chat.sql (every tenant schema) and
migrations/lab/0001_lab.sql (the lab schema), and not once (issue 12, "one of each"): both files are
frozen, since app/db/tenancy.py refuses an applied migration whose checksum changed, so no later change can
take the text out of them. A new migration moving both schemas onto ONE shared function (say
`lab.audit_chain()`) would therefore add a third copy rather than remove one, and it would weaken the
control: every tenant's append-only guard would then hang on one function in another schema, so a single
`CREATE OR REPLACE FUNCTION` (or a `DROP SCHEMA lab CASCADE`, which silently drops the triggers of every
tenant) would change or remove the audit of all tenants at once, and a tenant schema would no longer be
complete on its own. So the two copies stay, and tests/app/db/test_audit_trigger_sql.py fails the moment
they differ; this module is the one Python implementation that verifies both chains.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

GENESIS = "0" * 64


class AuditRow(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    ts: datetime
    actor: str
    action: str
    target: str
    detail: str
    prev_hash: str
    hash: str


class ChainBreak(BaseModel):
    table: str
    id: int
    reason: str


def canonical_detail(detail: dict[str, Any] | None) -> str:
    """Details are stored as this exact text, so the hash never depends on a JSON serializer."""
    return json.dumps(detail or {}, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def format_ts(ts: datetime) -> str:
    if ts.tzinfo is None:
        raise ValueError("audit timestamps are timezone-aware")
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_text(row: AuditRow) -> str:
    fields = [str(row.id), format_ts(row.ts), row.actor, row.action, row.target, row.detail, row.prev_hash]
    return "|".join(f"{len(v)}:{v}" for v in fields)


def row_hash(row: AuditRow) -> str:
    return hashlib.sha256(canonical_text(row).encode("utf-8")).hexdigest()


def verify_chain(table: str, rows: Iterable[AuditRow]) -> ChainBreak | None:
    """First broken row (ordered by id), or None. Checks id continuity, links and each row's hash."""
    prev_hash = GENESIS
    expected_id = 1
    for row in rows:
        if row.id != expected_id:
            return ChainBreak(table=table, id=row.id, reason=f"id gap: expected {expected_id}")
        if row.prev_hash != prev_hash:
            return ChainBreak(table=table, id=row.id, reason="prev_hash does not match the previous row")
        if row_hash(row) != row.hash:
            return ChainBreak(table=table, id=row.id, reason="hash does not match the row's content")
        prev_hash = row.hash
        expected_id += 1
    return None
