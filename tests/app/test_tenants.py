"""Tenant lifecycle through the lab-admin API and the admin CLI: create works, delete leaves nothing,
and the worker's sweeper serves tenants created after provisioning."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from app.core.config import Settings
from app.db import tenancy
from labdef import LabDefinition
from tests.app.conftest import InProcessWorker, auth

pytestmark = pytest.mark.integration  # live: the lab's PostgreSQL and Redis

ROOT = Path(__file__).resolve().parents[2]


async def leftovers(owner: asyncpg.Connection, name: str) -> dict[str, Any]:
    ident = f"tenant_{name}"
    return {
        "role": await owner.fetchval("SELECT count(*) FROM pg_roles WHERE rolname = $1", ident),
        "schema": await owner.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", ident),
        "membership": await owner.fetchval(
            "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid OR r.oid = m.member"
            " WHERE r.rolname = $1", ident),
        "database_acl": await owner.fetchval(
            "SELECT count(*) FROM pg_database d, aclexplode(d.datacl) a JOIN pg_roles r ON r.oid = a.grantee"
            " WHERE r.rolname = $1", ident),
        "role_settings": await owner.fetchval(
            "SELECT count(*) FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname = $1",
            ident),
        "sessions": await owner.fetchval("SELECT count(*) FROM pg_stat_activity WHERE usename = $1", ident),
        "registry": await owner.fetchval("SELECT count(*) FROM lab.tenants WHERE name = $1", name),
        "acl": await owner.fetchval(
            "SELECT count(*) FROM pg_class c, aclexplode(c.relacl) a JOIN pg_roles r ON r.oid = a.grantee"
            " WHERE r.rolname = $1", ident),
    }


NOTHING = {"role": 0, "schema": 0, "membership": 0, "database_acl": 0, "role_settings": 0, "sessions": 0,
           "registry": 0, "acl": 0}


async def test_create_use_delete_leaves_nothing(client: httpx.AsyncClient, users: dict, owner: asyncpg.Connection,
                                                make_token: Any, synced: list[str]) -> None:
    name = f"zt{uuid.uuid4().hex[:8]}"
    r = await client.post("/api/v1/admin/tenants", json={"name": name}, headers=auth(users, "admin"))
    assert r.status_code == 201 and r.json()["changed"] is True, r.text
    again = await client.post("/api/v1/admin/tenants", json={"name": name}, headers=auth(users, "admin"))
    assert again.json() == {"changed": False, "actions": []}
    listed = await client.get("/api/v1/admin/tenants", headers=auth(users, "admin"))
    assert name in {t["name"] for t in listed.json()["items"]}
    h = {"Authorization": f"Bearer {make_token('zuser', ['user'], name)}"}
    r = await client.post("/api/v1/conversations", json={"title": "in new tenant"}, headers=h)
    assert r.status_code == 201, r.text
    assert (await leftovers(owner, name))["schema"] == 1

    r = await client.delete(f"/api/v1/admin/tenants/{name}", headers=auth(users, "admin"))
    assert r.status_code == 200 and r.json()["changed"] is True
    assert await leftovers(owner, name) == NOTHING
    # Its users are now refused, not served from a stale role.
    assert (await client.get("/api/v1/conversations", headers=h)).status_code == 403
    assert (await client.delete(f"/api/v1/admin/tenants/{name}", headers=auth(users, "admin"))).status_code == 404
    actions = await owner.fetch("SELECT action FROM lab.audit_log WHERE target = $1 ORDER BY id", name)
    assert [a["action"] for a in actions] == ["tenant.create", "tenant.delete"]
    verify = await client.get("/api/v1/admin/audit/verify", headers=auth(users, "admin"))
    assert verify.status_code == 200 and verify.json()["ok"] is True


async def test_admin_routes_need_lab_admin(client: httpx.AsyncClient, users: dict) -> None:
    for who in ("alice", "carol"):
        r = await client.post("/api/v1/admin/tenants", json={"name": "zzevil"}, headers=auth(users, who))
        assert r.status_code == 403
    r = await client.post("/api/v1/admin/tenants", json={"name": "Bad-Name; DROP"}, headers=auth(users, "admin"))
    assert r.status_code == 422


async def test_flower_access_check_is_204_for_lab_admin_only(client: httpx.AsyncClient, users: dict) -> None:
    """The route the edge's auth_request asks before every /flower/ request (edge/snippets/seclab-flower.conf.j2)."""
    r = await client.get("/api/v1/admin/flower-auth", headers=auth(users, "admin"))
    assert r.status_code == 204 and r.content == b""
    for who in ("alice", "carol", "notenant"):
        r = await client.get("/api/v1/admin/flower-auth", headers=auth(users, who))
        assert r.status_code == 403 and r.json()["type"] == "urn:seclab:problem:forbidden", who
    r = await client.get("/api/v1/admin/flower-auth")
    assert r.status_code == 401 and r.json()["type"] == "urn:seclab:problem:unauthenticated"
    assert r.headers["www-authenticate"].startswith("Bearer")


def _cli(*args: str) -> dict[str, Any]:
    p = subprocess.run([sys.executable, "-m", "app.db.admin", *args], check=False, cwd=ROOT, env=dict(os.environ),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 1, "one JSON line for Ansible"
    return json.loads(lines[0])


async def test_cli_is_idempotent(owner: asyncpg.Connection, synced: list[str]) -> None:
    name = f"zc{uuid.uuid4().hex[:8]}"
    assert (await asyncio.to_thread(_cli, "sync"))["changed"] is False
    assert (await asyncio.to_thread(_cli, "create-tenant", name))["changed"] is True
    assert (await asyncio.to_thread(_cli, "create-tenant", name))["changed"] is False
    assert (await asyncio.to_thread(_cli, "delete-tenant", name))["changed"] is True
    assert (await asyncio.to_thread(_cli, "delete-tenant", name))["changed"] is False
    assert await leftovers(owner, name) == NOTHING


async def test_sweeper_visits_a_tenant_created_outside_lab_yml(
    client: httpx.AsyncClient, worker: InProcessWorker, owner: asyncpg.Connection, settings: Settings,
    lab: LabDefinition, make_token: Any, synced: list[str],
) -> None:
    """The production store (`make_reply_store`, what the worker runs) finds a pending message of a tenant
    that lab.yml does not name, created the way the admin CLI and API do it; deleted, it is gone."""
    from app.crud.worker import make_reply_store

    name = f"zs{uuid.uuid4().hex[:8]}"
    assert name not in lab.tenant_names()
    await tenancy.create_tenant(owner, name, "test", tenancy.TenantLogin.from_settings(settings))
    store = await make_reply_store(settings)
    try:
        h = {"Authorization": f"Bearer {make_token('zsweep', ['user'], name)}"}
        r = await client.post("/api/v1/conversations", json={"title": "swept"}, headers=h)
        assert r.status_code == 201, r.text
        worker.mode = "drop"  # the broker is down: the message stays pending for the sweeper
        r = await client.post(f"/api/v1/conversations/{r.json()['id']}/messages", json={"content": "hello"},
                              headers=h)
        assert r.status_code == 202 and r.json()["message"]["status"] == "pending", r.text
        mid = uuid.UUID(r.json()["message"]["id"])

        known = await store.known_tenants()
        assert name in known and set(lab.tenant_names()) <= set(known)
        registry = {row["name"] for row in await owner.fetch("SELECT name FROM lab.tenants")}
        assert registry <= set(known), "a registered tenant the sweeper would not visit"
        assert (name, mid) in await store.stale_pending(0, 10000)
    finally:
        await tenancy.delete_tenant(owner, name, "test", tenancy.TenantLogin.from_settings(settings))
    try:
        assert name not in await store.known_tenants()
        assert all(t != name for t, _ in await store.stale_pending(0, 10000))
    finally:
        await store.close()
