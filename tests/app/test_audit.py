"""Audit log: append-only for the app's roles, hash-chained, and a tampered row is named."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from app.core.config import Settings
from app.db import tenancy
from tests.app.conftest import auth

pytestmark = pytest.mark.integration  # live: the lab's PostgreSQL and Redis

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "sql",
    ["UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log", "TRUNCATE audit_log"],
)
async def test_tenant_role_cannot_change_audit_log(acme_conn: asyncpg.Connection, sql: str) -> None:
    async with acme_conn.transaction():
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await acme_conn.execute(sql)


@pytest.mark.parametrize("sql", ["UPDATE {t} SET actor = 'mallory'", "DELETE FROM {t}", "TRUNCATE {t}"])
async def test_trigger_refuses_even_the_owner(owner: asyncpg.Connection, client: httpx.AsyncClient, users: dict,
                                              sql: str) -> None:
    await client.post("/api/v1/conversations", json={}, headers=auth(users, "alice"))
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await owner.execute(sql.format(t="tenant_acme.audit_log"))


async def test_concurrent_writes_keep_one_valid_chain(client: httpx.AsyncClient, users: dict,
                                                      owner: asyncpg.Connection) -> None:
    rs = await asyncio.gather(*[
        client.post("/api/v1/conversations", json={"title": f"c{i}"}, headers=auth(users, "alice")) for i in range(20)
    ])
    assert all(r.status_code == 201 for r in rs)
    tables, brk = await tenancy.verify_all(owner)
    assert "tenant_acme.audit_log" in tables
    assert brk is None, brk


async def test_tampered_row_is_named(owner: asyncpg.Connection, client: httpx.AsyncClient, users: dict) -> None:
    """Tamper as the owner with the guard trigger disabled, inside a transaction that is rolled back."""
    await client.post("/api/v1/conversations", json={}, headers=auth(users, "alice"))
    tx = owner.transaction()
    await tx.start()
    try:
        victim = await owner.fetchval("SELECT max(id) FROM tenant_acme.audit_log")
        await owner.execute("ALTER TABLE tenant_acme.audit_log DISABLE TRIGGER audit_log_no_update_delete")
        await owner.execute("UPDATE tenant_acme.audit_log SET actor = 'mallory' WHERE id = $1", victim)
        _, brk = await tenancy.verify_all(owner)
        assert brk is not None
        assert (brk.table, brk.id) == ("tenant_acme.audit_log", victim)
    finally:
        await tx.rollback()
    _, brk = await tenancy.verify_all(owner)
    assert brk is None


def _admin_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.db.admin", *args], check=False, cwd=ROOT, env=dict(os.environ),
                          capture_output=True, text=True, timeout=120)


async def test_verify_audit_cli_names_broken_row(settings: Settings, owner: asyncpg.Connection,
                                                 synced: list[str]) -> None:
    name = f"zt{uuid.uuid4().hex[:8]}"
    await tenancy.create_tenant(owner, name, "test", tenancy.TenantLogin.from_settings(settings))
    schema = f"tenant_{name}"
    try:
        await owner.execute(f"INSERT INTO {schema}.audit_log (actor, action) VALUES ('a', 'x'), ('b', 'y'), ('c', 'z')")
        ok = await asyncio.to_thread(_admin_cli, "verify-audit")
        assert ok.returncode == 0, ok.stdout + ok.stderr
        await owner.execute(f"ALTER TABLE {schema}.audit_log DISABLE TRIGGER audit_log_no_update_delete")
        await owner.execute(f"UPDATE {schema}.audit_log SET detail = '{{\"x\":1}}' WHERE id = 2")
        bad = await asyncio.to_thread(_admin_cli, "verify-audit")
        assert bad.returncode == 1
        out = json.loads(bad.stdout.strip().splitlines()[-1])
        assert out["broken"]["table"] == f"{schema}.audit_log" and out["broken"]["id"] == 2
    finally:
        await tenancy.delete_tenant(owner, name, "test", tenancy.TenantLogin.from_settings(settings))
