"""Redis failover with Sentinel, live (issue 14 part 4): the primary is killed mid-run, no accepted message is lost.

Real pieces, all the lab's: the two Redis data nodes and three sentinels (TLS, ACLs, AOF), the lab's
Celery worker (supervisord, its broker found through Sentinel) and PostgreSQL; the API runs in-process
(`create_app` with the lab's settings: its Redis client and its Celery publisher find the primary
through Sentinel; tokens from the test issuer, as in the other integration tests).

The run: messages before; then the primary is killed (SIGKILL, held down) while two users keep
posting; Sentinel promotes the replica; messages after. Every message the API accepted (201/202)
must end up answered exactly once (one reply row), after a dead-letter replay if some were
dead-lettered. The killed node is started again and must rejoin as a replica of the new primary;
finally the original roles are restored (SENTINEL FAILOVER) so the tests after this one see the lab
as `./lab up` made it. Late: it takes the lab's Redis away for a while.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest

from app.core.config import Settings
from app.main import create_app
from labdef import LabDefinition
from tests.app.conftest import auth, stand_in_screener
from tests.conftest import need

pytestmark = [pytest.mark.integration, pytest.mark.late, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[2]
P = "/api/v1"
ACCEPTED = (201, 202)


@pytest.fixture(scope="module")
def ha(settings: Settings, lab: LabDefinition) -> Iterator[Any]:
    from tools.redis_failover import RedisHA

    need(os.geteuid() == 0, "root (the test stops and starts the lab's Redis nodes)")
    need(shutil.which("supervisorctl") is not None, "supervisorctl (the lab's process manager)")
    need(bool(settings.redis_sentinel_addresses()), "SECLAB_REDIS_SENTINELS in app.env (redis role: sentinels)")
    try:
        h = RedisHA(lab, settings.redis_master_name)
    except OSError as exc:
        need(False, f"the sentinel password and redis-peer certificate ({exc})")
    try:
        h.wait("a healthy Redis pair with its sentinels", h.healthy, 60)
    except RuntimeError as exc:
        need(False, str(exc))
    yield h
    h.restore()  # whatever happened: both nodes up, the lab.yml primary primary, replica connected


async def _answers(owner: asyncpg.Connection, accepted: list[tuple[str, str]]) -> dict[str, tuple[str, int]]:
    """message id -> (status of the user message, number of replies to it)."""
    out: dict[str, tuple[str, int]] = {}
    for tenant, mid in accepted:
        row = await owner.fetchrow(
            f"SELECT status, (SELECT count(*) FROM tenant_{tenant}.messages r WHERE r.reply_to = m.id) AS replies "
            f"FROM tenant_{tenant}.messages m WHERE m.id = $1", UUID(mid))
        out[mid] = (row["status"], int(row["replies"])) if row else ("absent", 0)
    return out


def _lab_status() -> dict[str, Any]:
    p = subprocess.run([sys.executable, "-m", "seclab.cli", "status", "--json"], cwd=ROOT, env=dict(os.environ),
                       capture_output=True, text=True, check=False, timeout=120)
    return dict(json.loads(p.stdout))


def _dlq_replay() -> str:
    p = subprocess.run([sys.executable, "-m", "seclab.cli", "dlq", "replay", "--all"], cwd=ROOT,
                       env=dict(os.environ), capture_output=True, text=True, check=False, timeout=120)
    return p.stdout + p.stderr


async def test_primary_killed_mid_run_every_accepted_message_answered_exactly_once(
    ha: Any, settings: Settings, lab: LabDefinition, issuer: Any, users: dict, owner: asyncpg.Connection,
) -> None:
    # The production enqueuer (Celery through Sentinel, the API's ACL user) and Redis client.
    application = create_app(settings=settings, lab=lab, http_client=issuer.client(), screener=stand_in_screener)
    accepted: list[tuple[str, str]] = []
    phases: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    tenants = {"alice": "acme", "bob": "globex"}
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, client=(f"2001:db8::{uuid.uuid4().hex[:4]}", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test", timeout=30) as client:
            convs = {}
            for who in tenants:
                r = await client.post(f"{P}/conversations", json={"title": "redis failover"}, headers=auth(users, who))
                assert r.status_code == 201, r.text
                convs[who] = r.json()["id"]

            async def post(phase: str, n: int) -> None:
                for who, cid in convs.items():
                    r = await client.post(f"{P}/conversations/{cid}/messages",
                                          json={"content": f"failover {phase} {n} from {who}"},
                                          headers=auth(users, who))
                    statuses[r.status_code] += 1
                    # The API keeps answering: accepted, or a clean problem+json, never a 500.
                    assert r.status_code in (*ACCEPTED, 429, 503), r.text
                    if r.status_code in ACCEPTED:
                        accepted.append((tenants[who], r.json()["message"]["id"]))
                        phases[phase] += 1

            for n in range(3):
                await post("before", n)
            old = ha.primary()
            await asyncio.to_thread(ha.kill, old)
            t_kill = time.monotonic()
            n = 0
            promoted_at: float | None = None
            # Keep posting through the failover and a few seconds beyond it.
            while time.monotonic() - t_kill < 60:
                await post("during", n)
                n += 1
                if promoted_at is None and await asyncio.to_thread(lambda: ha.primary() != old):
                    promoted_at = time.monotonic()
                if promoted_at is not None and time.monotonic() - promoted_at > 5:
                    break
                await asyncio.sleep(0.3)
            assert promoted_at is not None, "Sentinel did not promote the replica within 60 s"
            assert await asyncio.to_thread(ha.primary) == ha.other(old)
            # `./lab status` names the new primary (exit 3: the killed node is down, as it says).
            st = await asyncio.to_thread(_lab_status)
            assert st["redis_primary"] == f"127.0.0.1:{ha.other(old)}", st.get("redis_primary")
            assert st["services"]["redis" if old == lab.ports.redis else "redis_replica"]["up"] is False
            for n in range(3):
                await post("after", n)
            # The app's own Redis client reaches the new primary: /readyz sees Redis again.
            r = await client.get("/readyz")
            assert r.status_code == 200, r.text

    # The killed node comes back and Sentinel makes it a replica of the new primary.
    await asyncio.to_thread(ha.start, old)
    await asyncio.to_thread(ha.wait, "the old primary to rejoin as a replica", ha.healthy, 120)
    role = await asyncio.to_thread(ha.role, old)
    assert role is not None and role[0] == "slave" and int(role[2]) == ha.other(old)

    assert phases["before"] == 6 and phases["after"] == 6, (phases, statuses)
    assert phases["during"] > 0, (phases, statuses)
    # Every accepted message answered exactly once: the worker's broker moved with the primary; what
    # the broker lost (async replication, the killed node's last second) the sweeper re-enqueues from
    # PostgreSQL (sweep every 60 s for messages pending over 120 s); dead letters are replayed.
    deadline = time.monotonic() + 420
    replayed = False
    while True:
        got = await _answers(owner, accepted)
        if all(st == "answered" for st, _ in got.values()):
            break
        if not replayed and any(st == "failed" for st, _ in got.values()):
            out = await asyncio.to_thread(_dlq_replay)
            replayed = True
            assert "replayed" in out, out
        assert time.monotonic() < deadline, {m: v for m, v in got.items() if v[0] != "answered"}
        await asyncio.sleep(5)
    assert {m: n for m, (_, n) in got.items() if n != 1} == {}, "a message answered more than once (or never)"
    assert len(got) == len(accepted) == len(set(accepted))
