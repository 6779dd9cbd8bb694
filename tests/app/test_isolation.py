"""Tenant isolation, proven where it is enforced: in PostgreSQL, and then through the API.

Cross-tenant or cross-user ids answer 404, not 403: a 403 would confirm that the id exists
(OWASP API1:2023 BOLA; ASVS 4.0.3 V4.2.1).
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from app.db.connect import ssl_context
from tests.app.conftest import auth

pytestmark = pytest.mark.integration  # live: the lab's PostgreSQL and Redis

P = "/api/v1"


CROSS_TENANT_SQL = [
    "SELECT * FROM tenant_globex.conversations",
    "SELECT * FROM tenant_globex.messages",
    "SELECT * FROM tenant_globex.audit_log",
    "INSERT INTO tenant_globex.conversations (id, owner_sub) VALUES (gen_random_uuid(), 'x')",
    "INSERT INTO tenant_globex.audit_log (actor, action) VALUES ('x', 'y')",
    "SELECT * FROM lab.tenants",
    "SET LOCAL ROLE seclab_owner",
    "SET LOCAL ROLE seclab_app",
    "CREATE TABLE tenant_acme.evil (x int)",
    "CREATE TABLE public.evil (x int)",
]


@pytest.mark.parametrize("sql", CROSS_TENANT_SQL)
async def test_acme_login_cannot_reach_globex(acme_conn: asyncpg.Connection, sql: str) -> None:
    async with acme_conn.transaction():
        assert await acme_conn.fetchval("SELECT current_user") == "tenant_acme"
        assert await acme_conn.fetchval("SELECT count(*) >= 0 FROM conversations")  # own schema works
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await acme_conn.execute(sql)


async def test_set_role_cannot_switch_to_another_tenant(acme_conn: asyncpg.Connection) -> None:
    """Was a strict xfail while the app logged in as seclab_app and switched with SET ROLE: now the
    session user is tenant_acme itself, and it is a member of no other tenant's role."""
    async with acme_conn.transaction():
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await acme_conn.execute("SET LOCAL ROLE tenant_globex")


async def _globex_unreachable(conn: asyncpg.Connection) -> None:
    """After whatever the attacker's SQL did: still tenant_acme, still no globex row."""
    assert await conn.fetchval("SELECT current_user") == "tenant_acme"
    assert await conn.fetchval("SELECT session_user") == "tenant_acme"
    for table in ("conversations", "messages", "audit_log"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            async with conn.transaction():
                await conn.fetch(f"SELECT * FROM tenant_globex.{table} LIMIT 1")


async def test_every_way_out_of_acme_is_closed(acme_conn: asyncpg.Connection) -> None:
    """SQL an attacker fully controls on acme's session: SET ROLE, SET SESSION AUTHORIZATION, RESET ROLE
    and a search_path change, each tried (session-level, not only LOCAL), none reaches globex."""
    for sql in ("SET ROLE tenant_globex", "SET SESSION AUTHORIZATION tenant_globex",
                "SET SESSION AUTHORIZATION seclab_owner", "SET ROLE seclab_app", "SET ROLE seclab_owner"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await acme_conn.execute(sql)
        await _globex_unreachable(acme_conn)
    # RESET ROLE / RESET SESSION AUTHORIZATION are allowed, and land on... tenant_acme itself.
    await acme_conn.execute("RESET ROLE")
    await _globex_unreachable(acme_conn)
    await acme_conn.execute("RESET SESSION AUTHORIZATION")
    await _globex_unreachable(acme_conn)
    # search_path: the unqualified names now resolve in globex's schema... which acme may not use.
    await acme_conn.execute("SET search_path TO tenant_globex, tenant_acme")
    assert await acme_conn.fetchval("SELECT count(*) >= 0 FROM conversations")  # falls through to its own
    assert await acme_conn.fetchval(
        "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.oid = 'conversations'::regclass") == "tenant_acme"
    await acme_conn.execute("SET search_path TO tenant_globex")
    with pytest.raises(asyncpg.UndefinedTableError):  # no USAGE on the schema: its tables are invisible
        await acme_conn.fetch("SELECT * FROM conversations")
    await _globex_unreachable(acme_conn)


async def test_a_new_session_lands_in_its_own_schema(acme_conn: asyncpg.Connection) -> None:
    assert await acme_conn.fetchval("SHOW search_path") == "tenant_acme"
    row = await acme_conn.fetchrow("SELECT rolinherit, rolsuper, rolcreatedb, rolcreaterole, rolreplication,"
                                   " rolbypassrls, rolconnlimit FROM pg_roles WHERE rolname = current_user")
    assert not any(row[k] for k in ("rolinherit", "rolsuper", "rolcreatedb", "rolcreaterole", "rolreplication",
                                    "rolbypassrls"))
    assert row["rolconnlimit"] > 0  # bounded sessions per tenant


async def test_app_login_reaches_no_tenant(app_conn: asyncpg.Connection, synced: list[str]) -> None:
    """seclab_app (readiness, tenant list) is a member of no tenant role: no SET ROLE, no rows."""
    for schema in ("tenant_acme", "tenant_globex", "lab"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await app_conn.fetch(f"SELECT * FROM {schema}.audit_log LIMIT 1")
    for role in ("tenant_acme", "tenant_globex", "seclab_owner"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await app_conn.execute(f"SET ROLE {role}")


async def test_tenant_login_needs_its_own_secret(settings: Any, synced: list[str]) -> None:
    """acme's derived password does not open globex's login (a distinct SCRAM secret per tenant)."""
    from app.db.pools import tenant_key
    from app.db.tenancy import tenant_password

    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(
            host=settings.db_host, port=settings.db_port, user="tenant_globex", database=settings.db_name,
            password=tenant_password(tenant_key(settings), "acme"), ssl=ssl_context(settings),
        )


async def test_other_tenant_cannot_read_or_write_via_api(client: httpx.AsyncClient, users: dict) -> None:
    r = await client.post(f"{P}/conversations", json={"title": "acme secret"}, headers=auth(users, "alice"))
    cid = r.json()["id"]
    for who in ("bob", "carol"):  # other tenant, and same tenant but another user
        assert (await client.get(f"{P}/conversations/{cid}", headers=auth(users, who))).status_code == 404
        assert (await client.get(f"{P}/conversations/{cid}/messages", headers=auth(users, who))).status_code == 404
        r = await client.post(f"{P}/conversations/{cid}/messages", json={"content": "hi"}, headers=auth(users, who))
        assert r.status_code == 404 and r.json()["type"] == "urn:seclab:problem:not-found"
        listed = (await client.get(f"{P}/conversations", params={"limit": 100}, headers=auth(users, who))).json()
        assert cid not in {c["id"] for c in listed["items"]}
    # The unknown-id answer is identical, so existence does not leak.
    missing = await client.get(f"{P}/conversations/{uuid.uuid4()}", headers=auth(users, "bob"))
    foreign = await client.get(f"{P}/conversations/{cid}", headers=auth(users, "bob"))
    assert missing.json()["detail"] == foreign.json()["detail"]
    assert (await client.get(f"{P}/conversations/{cid}", headers=auth(users, "alice"))).status_code == 200
