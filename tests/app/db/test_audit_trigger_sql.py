"""The hash-chained audit trigger is written twice on purpose and must stay the same.

Why two copies: migrations are immutable once applied (app/db/tenancy.py refuses an applied file whose
checksum changed), and both first migrations, the tenant schema's (0001_chat.sql) and the lab schema's
(lab/0001_lab.sql), already carry it on every provisioned lab; moving it into one shared file would change
both checksums and stop every existing lab at its next `./lab up`. So the rule is enforced here instead:
the audit table, its trigger functions and triggers are the same statements in both (comments aside), and
app/db/audit.py verifies both chains with one Python implementation.
"""

from __future__ import annotations

import re
from pathlib import Path

MIGRATIONS = Path(__file__).resolve().parents[3] / "app" / "db" / "migrations"


def audit_statements(sql: str) -> str:
    """From `CREATE TABLE audit_log` to the end, comments and blank lines removed, spaces folded."""
    part = sql[sql.index("CREATE TABLE audit_log"):]
    lines = (re.sub(r"\s+", " ", line.split("--", 1)[0]).strip() for line in part.splitlines())
    return "\n".join(line for line in lines if line)


def test_tenant_and_lab_audit_triggers_are_the_same() -> None:
    tenant = audit_statements((MIGRATIONS / "0001_chat.sql").read_text(encoding="utf-8"))
    lab = audit_statements((MIGRATIONS / "lab" / "0001_lab.sql").read_text(encoding="utf-8"))
    assert "CREATE FUNCTION audit_chain()" in tenant and "audit_log_no_truncate" in tenant
    assert tenant == lab


def test_the_comparison_sees_a_changed_statement() -> None:
    sql = (MIGRATIONS / "0001_chat.sql").read_text(encoding="utf-8")
    assert audit_statements(sql) != audit_statements(sql.replace("repeat('0', 64)", "repeat('0', 63)"))
