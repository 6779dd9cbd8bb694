"""`lab tenant add|remove`: a tenant is added through lab.yml, used, and removed; afterwards nothing of it
is left in PostgreSQL, Redis, the secrets directory or lab.yml, checked object by object (issue 14).

Runs the CLI with `--no-up` on a copy of lab.yml (the realm follows lab.yml on the next `./lab up`;
that path is the provisioning tests'). The Redis state is made by the production code paths: the
token budget's reservation script, the sweeper's mark, a dead-letter entry.
"""

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

from app.ai.budget import TokenBudget
from app.core.config import Settings
from app.worker.dlq import DLQ_KEY, DlqEntry, dlq_add
from labdef import LabDefinition
from tests.app.conftest import InProcessWorker
from tests.app.test_tenants import NOTHING, leftovers
from tests.conftest import need

pytestmark = pytest.mark.integration  # live: the lab's PostgreSQL and Redis

ROOT = Path(__file__).resolve().parents[2]


def _lab(lab_file: Path, *args: str) -> dict[str, Any]:
    env = dict(os.environ, SECLAB_LAB_FILE=str(lab_file))
    p = subprocess.run([sys.executable, "-m", "seclab.cli", *args], cwd=ROOT, env=env, capture_output=True,
                       text=True, check=False, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    return dict(json.loads(p.stdout))


def _admin_redis(settings: Settings, lab: LabDefinition) -> Any:
    """The root-only ACL user that may SCAN (the app's user may not: it would list every key)."""
    from app.worker.runtime import redis_client

    return redis_client(settings.model_copy(update={
        "redis_user": "seclab_tenant_admin",
        "redis_password_file": str(Path(lab.paths.secrets) / "redis_tenant_admin_password")}))


async def _redis_leftovers(redis: Any, name: str) -> dict[str, int]:
    keys = [k async for k in redis.scan_iter(match=f"seclab:*{name}*", count=500)]
    dlq = [f for _, f in await redis.xrange(DLQ_KEY) if f.get(b"tenant", f.get("tenant")) in (name, name.encode())]
    return {"keys": len(keys), "dlq_entries": len(dlq)}


def _secrets_leftovers(lab: LabDefinition, name: str) -> list[str]:
    return [str(p) for p in Path(lab.paths.secrets).rglob("*")
            if name in p.name or (p.is_file() and name.encode() in p.read_bytes())]


async def test_add_use_remove_leaves_nothing(tmp_path: Path, settings: Settings, lab: LabDefinition, app: Any,
                                             client: httpx.AsyncClient, worker: InProcessWorker,
                                             owner: asyncpg.Connection, make_token: Any) -> None:
    need(os.access(lab.paths.secrets, os.R_OK), f"read access to {lab.paths.secrets} (run as root)")
    name = f"zl{uuid.uuid4().hex[:8]}"
    lab_file = tmp_path / "lab.yml"
    lab_file.write_text((ROOT / "lab.yml").read_text(encoding="utf-8"), encoding="utf-8")

    added = await asyncio.to_thread(_lab, lab_file, "tenant", "add", name, "--display-name", "Lifecycle Ltd", "--no-up")
    assert added["changed"] is True and added["database"]["changed"] is True
    assert f"- name: {name}" in lab_file.read_text(encoding="utf-8")
    assert (await leftovers(owner, name))["schema"] == 1
    assert (await asyncio.to_thread(_lab, lab_file, "tenant", "add", name, "--no-up"))["changed"] is False

    # Used: a conversation, a message answered by the worker, a budget, a sweeper mark, a dead letter.
    h = {"Authorization": f"Bearer {make_token('zlife', ['user'], name)}"}
    r = await client.post("/api/v1/conversations", json={"title": "lifecycle"}, headers=h)
    assert r.status_code == 201, r.text
    r = await client.post(f"/api/v1/conversations/{r.json()['id']}/messages", json={"content": "hello"}, headers=h)
    assert r.status_code in (201, 202), r.text
    await worker.drain()
    redis = app.state.redis
    budget = TokenBudget(redis, per_user_per_hour=10**6, per_tenant_per_hour=10**6)
    await budget.reserve(tenant=name, user="zlife", amount=10)
    await redis.set(f"seclab:sweep:{name}:{uuid.uuid4()}", "1", ex=600)
    await dlq_add(redis, DlqEntry(task="answer", tenant=name, message_id=str(uuid.uuid4()), category="unknown",
                                  attempts=1, error="test"))
    admin = _admin_redis(settings, lab)
    before = await _redis_leftovers(admin, name)
    assert before["keys"] >= 3 and before["dlq_entries"] == 1, before

    removed = await asyncio.to_thread(_lab, lab_file, "tenant", "remove", name, "--no-up")
    assert removed["database"]["changed"] is True and removed["redis"]["dlq_entries"] == 1

    assert await leftovers(owner, name) == NOTHING
    assert await _redis_leftovers(admin, name) == {"keys": 0, "dlq_entries": 0}
    await admin.aclose()
    assert _secrets_leftovers(lab, name) == []
    assert name not in lab_file.read_text(encoding="utf-8")
    assert lab_file.read_text(encoding="utf-8") == (ROOT / "lab.yml").read_text(encoding="utf-8")
    # Its users are refused now (the login role is gone), not served from a stale pool.
    assert (await client.get("/api/v1/conversations", headers=h)).status_code == 403
