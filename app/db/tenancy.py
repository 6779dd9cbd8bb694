"""Schema-and-login-role per tenant: names, login secrets and DDL as seclab_owner.

Why both a schema and a role, and why the role logs in itself: a session of `tenant_x` makes
PostgreSQL refuse any row of another tenant, and since it is the SESSION user no SQL inside it can
switch to another tenant's role (SET ROLE is checked against the session user): a bug or an
injection in the app cannot cross tenants (OWASP API1:2023 BOLA, ASVS 4.0.3 V4.2.1). The pools that
log in as the tenant roles are app/db/pools.py. The app's catalog login seclab_app is NOINHERIT and a
member of no tenant role: it reaches no tenant data at all.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import BaseModel, ConfigDict

from app.core.config import Settings
from app.db.audit import AuditRow, ChainBreak, canonical_detail, verify_chain
from labdef import NAME_PATTERN

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
LAB_SCHEMA = "lab"
APP_ROLE_DEFAULT = "seclab_app"
CHAT_TABLES = ("conversations", "messages")
AUDIT_TABLE = "audit_log"
# Marker group of the tenant login roles: pg_hba admits `+seclab_tenants`; it holds no privilege.
TENANTS_GROUP = "seclab_tenants"
# Sessions one tenant may hold at once (pools of the API processes and the worker), so a busy tenant
# cannot take every connection of the server (OWASP API4:2023 unrestricted resource consumption).
CONNECTION_LIMIT_DEFAULT = 20
KEY_CONTEXT = b"seclab/tenant-login/v1/"


class TenantNameError(ValueError):
    pass


def tenant_ident(name: str) -> str:
    """`tenant_<name>` after validation; names come from lab.yml, the API or a token claim."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise TenantNameError(f"invalid tenant name {name!r}")
    return f"tenant_{name}"


def tenant_password(key: bytes, tenant: str) -> str:
    """The tenant's login password: 64 hex characters, HMAC-SHA256 of its role name under the one
    provisioning-generated key, so each tenant has its own SCRAM secret and none is stored per tenant."""
    return hmac.new(key, KEY_CONTEXT + tenant_ident(tenant).encode(), hashlib.sha256).hexdigest()


def login_fingerprint(key: bytes, tenant: str) -> str:
    """What `lab.tenants` records of the login secret: shows whether the role's password is current
    (key rotated, role made before this design) without storing or re-deriving the password there."""
    return hmac.new(key, b"fingerprint/" + tenant_ident(tenant).encode(), hashlib.sha256).hexdigest()[:32]


def quote_ident(ident: str) -> str:
    """Quote a validated identifier (defence in depth: the name was already checked by labdef.NAME_PATTERN)."""
    return '"' + ident.replace('"', '""') + '"'


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


class TenantLogin(BaseModel):
    """What the owner needs to make a tenant's login role: the key its password derives from
    (app/db/pools.py), the role that must NOT be a member (the app's catalog login), the session cap."""

    model_config = ConfigDict(frozen=True)

    key: bytes
    app_role: str = APP_ROLE_DEFAULT
    connection_limit: int = CONNECTION_LIMIT_DEFAULT
    database: str = "seclab"

    @classmethod
    def from_settings(cls, settings: Settings) -> TenantLogin:
        secret = settings.db_tenant_key()
        if secret is None:
            raise RuntimeError("SECLAB_DB_TENANT_KEY_FILE is not set: tenant logins cannot be made")
        return cls(key=secret.get_secret_value().encode(), app_role=settings.db_user,
                   connection_limit=settings.db_tenant_connection_limit, database=settings.db_name)


async def _login_snapshot(conn: asyncpg.Connection, ident: str) -> tuple[Any, ...]:
    row = await conn.fetchrow(
        "SELECT rolcanlogin, rolinherit, rolconnlimit, rolconfig::text FROM pg_roles WHERE rolname = $1", ident)
    member = await conn.fetchval(
        "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member"
        " JOIN pg_roles g ON g.oid = m.roleid WHERE r.rolname = $1 AND g.rolname = $2", ident, TENANTS_GROUP)
    return (tuple(row) if row else None, member)


async def ensure_tenant(conn: asyncpg.Connection, name: str, login: TenantLogin) -> list[str]:
    """Login role, schema, grants and migrations for one tenant; returns what changed."""
    from app.db.scram import scram_verifier

    ident = tenant_ident(name)
    q = quote_ident(ident)
    app_role = login.app_role
    actions: list[str] = []
    created = False
    if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", ident):
        # NOINHERIT: membership in the marker group grants nothing; a password only as a SCRAM verifier.
        verifier = scram_verifier(tenant_password(login.key, name))
        await conn.execute(f"CREATE ROLE {q} LOGIN NOINHERIT PASSWORD '{verifier}'")
        actions.append(f"create role {ident}")
        created = True
    if not await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", ident):
        await conn.execute(f"CREATE SCHEMA {q}")  # owned by the connected role, seclab_owner
        actions.append(f"create schema {ident}")
    actions += await apply_migrations(conn, ident)
    before = (await _privilege_snapshot(conn, ident, ident, app_role), await _login_snapshot(conn, ident),
              await conn.fetchval("SELECT datacl::text FROM pg_database WHERE datname = current_database()"))
    tables = ", ".join(f"{q}.{quote_ident(t)}" for t in CHAT_TABLES)
    audit = f"{q}.{quote_ident(AUDIT_TABLE)}"
    # (CREATE ROLE's defaults are NOCREATEDB NOCREATEROLE NOREPLICATION NOSUPERUSER, and only a superuser
    # may even name the replication attribute: the owner cannot grant them, tests check the result.)
    await conn.execute(f"ALTER ROLE {q} LOGIN NOINHERIT CONNECTION LIMIT {int(login.connection_limit)}")
    # The session lands in its own schema; a later `SET search_path` finds nothing it may use elsewhere.
    await conn.execute(f"ALTER ROLE {q} SET search_path TO {q}")
    await conn.execute(f"GRANT {quote_ident(TENANTS_GROUP)} TO {q}")
    await conn.execute(f"GRANT CONNECT ON DATABASE {quote_ident(login.database)} TO {q}")
    await conn.execute(f"REVOKE ALL ON SCHEMA {q} FROM PUBLIC")
    await conn.execute(f"GRANT USAGE ON SCHEMA {q} TO {q}")
    await conn.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA {q} FROM {q}")
    await conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {tables} TO {q}")
    # Append-only for the app (ASVS 4.0.3 V7.3.3): INSERT and SELECT, never UPDATE/DELETE/TRUNCATE.
    await conn.execute(f"GRANT SELECT, INSERT ON {audit} TO {q}")
    await conn.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {q} TO {q}")
    # The shared login of the design before per-tenant logins: membership would let it SET ROLE here.
    if await conn.fetchval("SELECT pg_has_role($1, $2, 'MEMBER')", app_role, ident):
        await conn.execute(f"REVOKE {q} FROM {quote_ident(app_role)}")
    after = (await _privilege_snapshot(conn, ident, ident, app_role), await _login_snapshot(conn, ident),
             await conn.fetchval("SELECT datacl::text FROM pg_database WHERE datname = current_database()"))
    if before != after:
        actions.append(f"grant {ident}")
    fingerprint = login_fingerprint(login.key, name)
    inserted = await conn.fetchval(
        f"INSERT INTO {LAB_SCHEMA}.tenants (name, login_fingerprint) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        " RETURNING name", name, fingerprint,
    )
    if inserted:
        actions.append(f"register tenant {name}")
    stored = await conn.fetchval(f"SELECT login_fingerprint FROM {LAB_SCHEMA}.tenants WHERE name = $1", name)
    if stored != fingerprint:  # a role from before, or the key was rotated: set the current secret
        if not created:
            verifier = scram_verifier(tenant_password(login.key, name))
            await conn.execute(f"ALTER ROLE {q} PASSWORD '{verifier}'")
            actions.append(f"set password {ident}")
        await conn.execute(f"UPDATE {LAB_SCHEMA}.tenants SET login_fingerprint = $2 WHERE name = $1", name, fingerprint)
    return actions


async def drop_tenant(conn: asyncpg.Connection, name: str, login: TenantLogin) -> list[str]:
    """Schema, role, its sessions, grants and registry row: nothing of the tenant is left afterwards."""
    ident = tenant_ident(name)
    q = quote_ident(ident)
    actions: list[str] = []
    if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", ident):
        # First no new session, then end the open ones: a removed tenant's pooled sessions must not
        # outlive its role (the owner holds pg_signal_backend for this, app/db/admin.py bootstrap).
        await conn.execute(f"ALTER ROLE {q} NOLOGIN")
        ended = await conn.fetchval(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = $1", ident)
        if ended:
            actions.append(f"end {ended} session(s) of {ident}")
            for _ in range(50):  # a terminated backend leaves pg_stat_activity within milliseconds
                await conn.execute("SELECT pg_stat_clear_snapshot()")
                if not await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE usename = $1", ident):
                    break
                await asyncio.sleep(0.1)
    if await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", ident):
        await conn.execute(f"DROP SCHEMA {q} CASCADE")
        actions.append(f"drop schema {ident}")
    if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", ident):
        if await conn.fetchval("SELECT pg_has_role($1, $2, 'MEMBER')", login.app_role, ident):
            await conn.execute(f"REVOKE {q} FROM {quote_ident(login.app_role)}")
        await conn.execute(f"REVOKE ALL ON DATABASE {quote_ident(login.database)} FROM {q}")
        await conn.execute(f"DROP ROLE {q}")  # its group membership and role settings go with it
        actions.append(f"drop role {ident}")
    if await conn.fetchval(f"DELETE FROM {LAB_SCHEMA}.tenants WHERE name = $1 RETURNING name", name):
        actions.append(f"unregister tenant {name}")
    return actions


async def lab_audit(conn: asyncpg.Connection, actor: str, action: str, target: str, detail: dict[str, Any]) -> None:
    await conn.execute(
        f"INSERT INTO {LAB_SCHEMA}.audit_log (actor, action, target, detail) VALUES ($1, $2, $3, $4)",
        actor, action, target, canonical_detail(detail),
    )


async def create_tenant(conn: asyncpg.Connection, name: str, actor: str, login: TenantLogin) -> list[str]:
    async with conn.transaction():
        actions = await ensure_lab_schema(conn)
        actions += await ensure_tenant(conn, name, login)
        if actions:
            await lab_audit(conn, actor, "tenant.create", name, {"actions": len(actions)})
    return actions


async def delete_tenant(conn: asyncpg.Connection, name: str, actor: str, login: TenantLogin) -> list[str]:
    async with conn.transaction():
        await ensure_lab_schema(conn)
        actions = await drop_tenant(conn, name, login)
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
