"""`python -m app.db.admin`: bootstrap, sync, create-tenant, delete-tenant, verify-audit.

Used by Ansible (and later Pulumi). Each command prints ONE JSON line `{"changed": bool, "actions": [...]}`
so playbooks can set `changed_when`; every command is idempotent. Passwords are never printed.

- bootstrap: as the postgres OS user over the unix socket (peer auth). Passwords from the env vars
  SECLAB_BOOTSTRAP_OWNER_PASSWORD / SECLAB_BOOTSTRAP_APP_PASSWORD, sent as SCRAM-SHA-256 verifiers
  computed here, so no clear-text password reaches the server or its statement log (ASVS 4.0.3 V2.4.1).
- sync / create-tenant / delete-tenant / verify-audit: as seclab_owner via the app settings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

import asyncpg

from app.core.config import Settings, load_settings
from app.db import tenancy
from app.db.connect import connect_owner
from app.db.scram import scram_matches, scram_verifier
from app.db.tenancy import quote_ident


def _emit(result: dict[str, Any]) -> None:
    print(json.dumps(result, default=str), flush=True)


async def bootstrap(
    owner_password: str, app_password: str, *, host: str, port: int, dbname: str,
    owner: str = "seclab_owner", app_role: str = "seclab_app",
) -> list[str]:
    actions: list[str] = []
    conn = await asyncpg.connect(host=host, port=port, user="postgres", database="postgres")
    try:
        for role, pw, attrs in (
            (owner, owner_password, "LOGIN CREATEROLE NOSUPERUSER NOCREATEDB NOREPLICATION"),
            # NOINHERIT: the app reaches tenant data only through SET ROLE tenant_<name>.
            (app_role, app_password, "LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION"),
        ):
            row = await conn.fetchrow("SELECT rolpassword FROM pg_authid WHERE rolname = $1", role)
            verifier = scram_verifier(pw)
            if row is None:
                await conn.execute(f"CREATE ROLE {quote_ident(role)} {attrs} PASSWORD '{verifier}'")
                actions.append(f"create role {role}")
            elif not scram_matches(row["rolpassword"], pw):
                await conn.execute(f"ALTER ROLE {quote_ident(role)} {attrs} PASSWORD '{verifier}'")
                actions.append(f"set password {role}")
            else:
                await conn.execute(f"ALTER ROLE {quote_ident(role)} {attrs}")
        # Marker group of the tenant login roles (pg_hba `+seclab_tenants`); it holds no privilege.
        if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", tenancy.TENANTS_GROUP):
            await conn.execute(f"CREATE ROLE {quote_ident(tenancy.TENANTS_GROUP)} NOLOGIN NOINHERIT")
            actions.append(f"create role {tenancy.TENANTS_GROUP}")
        # The owner ends a removed tenant's sessions (tenancy.drop_tenant); pg_signal_backend cannot
        # signal a superuser's backend (PostgreSQL 15 docs 22.5), so this is all it can stop.
        if not await conn.fetchval("SELECT pg_has_role($1, 'pg_signal_backend', 'MEMBER')", owner):
            await conn.execute(f"GRANT pg_signal_backend TO {quote_ident(owner)}")
            actions.append(f"grant pg_signal_backend to {owner}")
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", dbname):
            await conn.execute(f"CREATE DATABASE {quote_ident(dbname)} OWNER {quote_ident(owner)} ENCODING 'UTF8'")
            actions.append(f"create database {dbname}")
        dbacl_before = await conn.fetchval("SELECT datacl::text FROM pg_database WHERE datname = $1", dbname)
        await conn.execute(f"REVOKE ALL ON DATABASE {quote_ident(dbname)} FROM PUBLIC")
        await conn.execute(f"GRANT CONNECT ON DATABASE {quote_ident(dbname)} TO {quote_ident(app_role)}")
        dbacl_after = await conn.fetchval("SELECT datacl::text FROM pg_database WHERE datname = $1", dbname)
        if dbacl_before != dbacl_after:
            actions.append(f"restrict database {dbname}")
    finally:
        await conn.close()
    db = await asyncpg.connect(host=host, port=port, user="postgres", database=dbname)
    try:
        before = await db.fetchval("SELECT nspacl::text FROM pg_namespace WHERE nspname = 'public'")
        # No one but the owner creates objects in public (CVE-2018-1058 pattern; ASVS 4.0.3 V4.1.3 least privilege).
        await db.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        await db.execute(f"ALTER SCHEMA public OWNER TO {quote_ident(owner)}")
        after = await db.fetchval("SELECT nspacl::text FROM pg_namespace WHERE nspname = 'public'")
        if before != after:
            actions.append("revoke public schema")
    finally:
        await db.close()
    return actions


async def sync(settings: Settings) -> list[str]:
    lab = settings.load_lab()
    login = tenancy.TenantLogin.from_settings(settings)
    conn = await connect_owner(settings)
    try:
        actions = []
        async with conn.transaction():
            actions += await tenancy.ensure_lab_schema(conn)
        for name in lab.tenant_names():
            async with conn.transaction():
                actions += await tenancy.ensure_tenant(conn, name, login)
        return actions
    finally:
        await conn.close()


async def _with_owner(settings: Settings, fn: Any, *args: Any) -> Any:
    conn = await connect_owner(settings)
    try:
        return await fn(conn, *args)
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m app.db.admin", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bootstrap", help="roles, database, public schema (as postgres, peer auth)")
    b.add_argument("--host", default="/var/run/postgresql", help="unix socket directory")
    b.add_argument("--port", type=int, default=5432)
    b.add_argument("--dbname", default="seclab")
    sub.add_parser("sync", help="tenant roles, schemas, grants, migrations from the lab definition")
    c = sub.add_parser("create-tenant")
    c.add_argument("name")
    d = sub.add_parser("delete-tenant")
    d.add_argument("name")
    sub.add_parser("verify-audit", help="verify every audit hash chain; exit 1 naming the first broken row")
    args = p.parse_args(argv)
    try:
        if args.cmd == "bootstrap":
            owner_pw = os.environ.get("SECLAB_BOOTSTRAP_OWNER_PASSWORD")
            app_pw = os.environ.get("SECLAB_BOOTSTRAP_APP_PASSWORD")
            if not owner_pw or not app_pw:
                _emit({"changed": False, "failed": True,
                       "msg": "SECLAB_BOOTSTRAP_OWNER_PASSWORD and SECLAB_BOOTSTRAP_APP_PASSWORD are required"})
                return 2
            actions = asyncio.run(bootstrap(owner_pw, app_pw, host=args.host, port=args.port, dbname=args.dbname))
            _emit({"changed": bool(actions), "actions": actions})
            return 0
        settings = load_settings()
        if args.cmd == "sync":
            actions = asyncio.run(sync(settings))
        elif args.cmd == "create-tenant":
            actions = asyncio.run(_with_owner(settings, tenancy.create_tenant, args.name, "cli",
                                                  tenancy.TenantLogin.from_settings(settings)))
        elif args.cmd == "delete-tenant":
            actions = asyncio.run(_with_owner(settings, tenancy.delete_tenant, args.name, "cli",
                                                  tenancy.TenantLogin.from_settings(settings)))
        else:
            tables, brk = asyncio.run(_with_owner(settings, tenancy.verify_all))
            if brk is not None:
                _emit({"changed": False, "ok": False, "tables": tables, "broken": brk.model_dump()})
                return 1
            _emit({"changed": False, "ok": True, "tables": tables})
            return 0
        _emit({"changed": bool(actions), "actions": actions})
        return 0
    except (tenancy.TenantNameError, OSError, asyncpg.PostgresError, RuntimeError) as exc:
        _emit({"changed": False, "failed": True, "msg": f"{type(exc).__name__}: {exc}"[:500]})
        return 2


if __name__ == "__main__":
    sys.exit(main())
