"""Schema-and-role per tenant: DDL as seclab_owner, and the per-request tenant transaction.

Why both a schema and a role: `SET LOCAL ROLE tenant_x` makes PostgreSQL itself refuse any row of
another tenant, so a bug or an injection in the app cannot cross tenants (OWASP API1:2023 broken
object level authorization, ASVS 4.0.3 V4.2.1). The app's login role seclab_app is NOINHERIT:
without SET ROLE it reaches no tenant data at all.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg

from app.db.audit import AuditRow, ChainBreak, canonical_detail, verify_chain

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{1,30}$")
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
LAB_SCHEMA = "lab"
APP_ROLE_DEFAULT = "seclab_app"
CHAT_TABLES = ("conversations", "messages")
AUDIT_TABLE = "audit_log"


class TenantNameError(ValueError):
    pass


def tenant_ident(name: str) -> str:
    """`tenant_<name>` after validation; names come from lab.yml, the API or a token claim."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise TenantNameError(f"invalid tenant name {name!r}")
    return f"tenant_{name}"


def quote_ident(ident: str) -> str:
    """Quote a validated identifier (defence in depth: the name was already checked by NAME_RE)."""
    return '"' + ident.replace('"', '""') + '"'


# ---------------------------------------------------------------- per-request transaction (Tortoise)


@asynccontextmanager
async def tenant_transaction(orm: Any, tenant: str) -> AsyncIterator[Any]:
    """One transaction, switched to the tenant's role and schema before anything else runs.

    `orm` is the app's TortoiseContext; yields the transaction client for `using_db=`.
    SET LOCAL ends with the transaction, so a pooled connection never keeps a tenant's role.
    """
    from tortoise.context import _current_context  # per-task, unlike TortoiseContext.__enter__'s shared token

    q = quote_ident(tenant_ident(tenant))
    token = _current_context.set(orm)
    try:
        conn = orm.connections.get("default")
        async with conn._in_transaction() as tx:
            await tx.execute_script(f"SET LOCAL ROLE {q}; SET LOCAL search_path TO {q}")
            yield tx
    finally:
        _current_context.reset(token)


# ---------------------------------------------------------------- migrations


def migration_files(kind: str = "tenant") -> list[tuple[str, str, str]]:
    """(version, name, sql) sorted; tenant migrations in migrations/, lab ones in migrations/lab/."""
    folder = MIGRATIONS_DIR if kind == "tenant" else MIGRATIONS_DIR / "lab"
    out = []
    for path in sorted(folder.glob("[0-9][0-9][0-9][0-9]_*.sql")):
        version, _, rest = path.stem.partition("_")
        out.append((version, rest, path.read_text(encoding="utf-8")))
    return out


async def apply_migrations(conn: asyncpg.Connection, schema: str, kind: str = "tenant") -> list[str]:
    """Apply pending migrations to one schema; an edited, already applied file is an error."""
    q = quote_ident(schema)
    await conn.execute(
        f"CREATE TABLE IF NOT EXISTS {q}.schema_migrations ("
        " version text PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    rows = await conn.fetch(f"SELECT version, checksum FROM {q}.schema_migrations")
    applied = {r["version"]: r["checksum"] for r in rows}
    done: list[str] = []
    for version, name, sql in migration_files(kind):
        checksum = hashlib.sha256(sql.encode()).hexdigest()
        if version in applied:
            if applied[version] != checksum:
                raise RuntimeError(f"migration {version}_{name} changed after it was applied to {schema}")
            continue
        async with conn.transaction():
            await conn.execute(f"SET LOCAL search_path TO {q}")
            await conn.execute(sql)
            await conn.execute(
                f"INSERT INTO {q}.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                version, name, checksum,
            )
        done.append(f"migrate {schema} {version}_{name}")
    return done


# ---------------------------------------------------------------- DDL as seclab_owner


async def _privilege_snapshot(conn: asyncpg.Connection, schema: str, role: str, app_role: str) -> tuple[Any, ...]:
    acl = await conn.fetch(
        "SELECT c.relname, c.relacl::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = $1 ORDER BY c.relname",
        schema,
    )
    nsp = await conn.fetchval("SELECT nspacl::text FROM pg_namespace WHERE nspname = $1", schema)
    member = await conn.fetchval("SELECT pg_has_role($1, $2, 'MEMBER')", app_role, role)
    return (tuple(tuple(r) for r in acl), nsp, member)


async def ensure_lab_schema(conn: asyncpg.Connection) -> list[str]:
    actions: list[str] = []
    exists = await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", LAB_SCHEMA)
    if not exists:
        await conn.execute(f"CREATE SCHEMA {quote_ident(LAB_SCHEMA)}")
        actions.append(f"create schema {LAB_SCHEMA}")
    actions += await apply_migrations(conn, LAB_SCHEMA, kind="lab")
    return actions


async def ensure_tenant(conn: asyncpg.Connection, name: str, app_role: str = APP_ROLE_DEFAULT) -> list[str]:
    """Role, schema, grants, membership and migrations for one tenant; returns what changed."""
    ident = tenant_ident(name)
    q = quote_ident(ident)
    actions: list[str] = []
    if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", ident):
        await conn.execute(f"CREATE ROLE {q} NOLOGIN NOINHERIT")
        actions.append(f"create role {ident}")
    if not await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", ident):
        await conn.execute(f"CREATE SCHEMA {q}")  # owned by the connected role, seclab_owner
        actions.append(f"create schema {ident}")
    actions += await apply_migrations(conn, ident)
    before = await _privilege_snapshot(conn, ident, ident, app_role)
    tables = ", ".join(f"{q}.{quote_ident(t)}" for t in CHAT_TABLES)
    audit = f"{q}.{quote_ident(AUDIT_TABLE)}"
    await conn.execute(f"REVOKE ALL ON SCHEMA {q} FROM PUBLIC")
    await conn.execute(f"GRANT USAGE ON SCHEMA {q} TO {q}")
    await conn.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA {q} FROM {q}")
    await conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {tables} TO {q}")
    # Append-only for the app (ASVS 4.0.3 V7.3.3): INSERT and SELECT, never UPDATE/DELETE/TRUNCATE.
    await conn.execute(f"GRANT SELECT, INSERT ON {audit} TO {q}")
    await conn.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {q} TO {q}")
    await conn.execute(f"GRANT {q} TO {quote_ident(app_role)}")
    after = await _privilege_snapshot(conn, ident, ident, app_role)
    if before != after:
        actions.append(f"grant {ident}")
    inserted = await conn.fetchval(
        f"INSERT INTO {LAB_SCHEMA}.tenants (name) VALUES ($1) ON CONFLICT DO NOTHING RETURNING name", name
    )
    if inserted:
        actions.append(f"register tenant {name}")
    return actions


async def drop_tenant(conn: asyncpg.Connection, name: str, app_role: str = APP_ROLE_DEFAULT) -> list[str]:
    """Schema, role, grants and registry row: nothing of the tenant is left afterwards."""
    ident = tenant_ident(name)
    q = quote_ident(ident)
    actions: list[str] = []
    if await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", ident):
        await conn.execute(f"DROP SCHEMA {q} CASCADE")
        actions.append(f"drop schema {ident}")
    if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", ident):
        if await conn.fetchval("SELECT pg_has_role($1, $2, 'MEMBER')", app_role, ident):
            await conn.execute(f"REVOKE {q} FROM {quote_ident(app_role)}")
        await conn.execute(f"DROP ROLE {q}")
        actions.append(f"drop role {ident}")
    if await conn.fetchval(f"DELETE FROM {LAB_SCHEMA}.tenants WHERE name = $1 RETURNING name", name):
        actions.append(f"unregister tenant {name}")
    return actions


async def lab_audit(conn: asyncpg.Connection, actor: str, action: str, target: str, detail: dict[str, Any]) -> None:
    await conn.execute(
        f"INSERT INTO {LAB_SCHEMA}.audit_log (actor, action, target, detail) VALUES ($1, $2, $3, $4)",
        actor, action, target, canonical_detail(detail),
    )


async def create_tenant(conn: asyncpg.Connection, name: str, actor: str, app_role: str = APP_ROLE_DEFAULT) -> list[str]:
    async with conn.transaction():
        actions = await ensure_lab_schema(conn)
        actions += await ensure_tenant(conn, name, app_role)
        if actions:
            await lab_audit(conn, actor, "tenant.create", name, {"actions": len(actions)})
    return actions


async def delete_tenant(conn: asyncpg.Connection, name: str, actor: str, app_role: str = APP_ROLE_DEFAULT) -> list[str]:
    async with conn.transaction():
        await ensure_lab_schema(conn)
        actions = await drop_tenant(conn, name, app_role)
        if actions:
            await lab_audit(conn, actor, "tenant.delete", name, {"actions": len(actions)})
    return actions


async def list_tenants(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch(f"SELECT name, created_at FROM {LAB_SCHEMA}.tenants ORDER BY name")
    return [dict(r) for r in rows]


async def audit_tables(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relname = 'audit_log' AND c.relkind = 'r' AND (n.nspname = $1 OR n.nspname LIKE 'tenant\\_%')"
        " ORDER BY n.nspname = $1 DESC, n.nspname",
        LAB_SCHEMA,
    )
    return [f"{r['nspname']}.audit_log" for r in rows]


async def verify_all(conn: asyncpg.Connection) -> tuple[list[str], ChainBreak | None]:
    """Verify every audit chain; stops at the first broken row. Reads in id order, in batches."""
    tables = await audit_tables(conn)
    for table in tables:
        schema = table.split(".", 1)[0]
        rows = await conn.fetch(
            f"SELECT id, ts, actor, action, target, detail, prev_hash, hash FROM {quote_ident(schema)}.audit_log"
            " ORDER BY id"
        )
        brk = verify_chain(table, (AuditRow(**dict(r)) for r in rows))
        if brk is not None:
            return tables, brk
    return tables, None
