"""Accept -> pending -> worker -> answered, against the lab's PostgreSQL (real ReplyStore, tenant roles).

The worker here is the in-process STAND-IN of conftest.py (the real task body, no Celery); the real
Celery worker with fault injection is tests/app/test_worker_faults.py.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest

from app.ai.gateway import GatewayResult
from app.core.config import Settings
from app.main import create_app
from tests.app.conftest import INJECTION_MARKER, InProcessWorker, auth, stand_in_screener

pytestmark = pytest.mark.integration  # live: the lab's PostgreSQL and Redis

P = "/api/v1"


async def new_conversation(client: httpx.AsyncClient, users: dict, who: str = "alice") -> str:
    r = await client.post(f"{P}/conversations", json={"title": "pipeline"}, headers=auth(users, who))
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def replies_to(owner: asyncpg.Connection, tenant: str, mid: str | UUID) -> int:
    return int(await owner.fetchval(f"SELECT count(*) FROM tenant_{tenant}.messages WHERE reply_to = $1", UUID(str(mid))))


async def test_accepted_message_is_202_pending_then_answered_once(
    client: httpx.AsyncClient, users: dict, worker: InProcessWorker, owner: asyncpg.Connection
) -> None:
    worker.mode = "hold"
    cid = await new_conversation(client, users)
    r = await client.post(f"{P}/conversations/{cid}/messages", json={"content": "what is TLS?"},
                          headers=auth(users, "alice"))
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["reply"] is None and body["message"]["status"] == "pending"
    assert body["message"]["guard"] == {"decision": "allow", "reasons": []}
    mid = body["message"]["id"]
    assert ("acme", UUID(mid)) in worker.enqueued
    # the row is committed before the task is published: a worker finds it
    assert await owner.fetchval("SELECT status FROM tenant_acme.messages WHERE id = $1", UUID(mid)) == "pending"
    worker.release()
    await worker.drain()
    items = (await client.get(f"{P}/conversations/{cid}/messages", headers=auth(users, "alice"))).json()["items"]
    assert [(m["role"], m["status"]) for m in items] == [("user", "answered"), ("assistant", None)]
    assert items[1]["reply_to"] == mid and items[1]["content_type"] == "text/plain"
    assert await replies_to(owner, "acme", mid) == 1


async def test_duplicate_deliveries_store_one_answer(
    client: httpx.AsyncClient, users: dict, worker: InProcessWorker, reply_store: Any, owner: asyncpg.Connection
) -> None:
    worker.mode = "hold"
    cid = await new_conversation(client, users)
    r = await client.post(f"{P}/conversations/{cid}/messages", json={"content": "twice?"}, headers=auth(users, "alice"))
    mid = UUID(r.json()["message"]["id"])
    worker.held.clear()
    worker.outcomes.clear()
    for _ in range(4):  # redelivery, sweeper and DLQ replay racing each other
        worker.spawn("acme", mid)
    await worker.drain()
    assert sorted(worker.outcomes).count("answered") == 1
    assert set(worker.outcomes) <= {"answered", "duplicate", "skipped"}
    assert await replies_to(owner, "acme", mid) == 1
    # the check-and-set itself: an answered message takes no second reply
    result = GatewayResult(text="late duplicate", provider="local")
    assert await reply_store.save_reply("acme", mid, result) is False
    assert await replies_to(owner, "acme", mid) == 1


async def test_enqueue_failure_keeps_the_message_pending_for_the_sweeper(
    client: httpx.AsyncClient, users: dict, worker: InProcessWorker, reply_store: Any
) -> None:
    from app.core.metrics import ENQUEUE_FAILURES

    before = ENQUEUE_FAILURES._value.get()
    worker.mode = "drop"  # the broker is down
    cid = await new_conversation(client, users)
    r = await client.post(f"{P}/conversations/{cid}/messages", json={"content": "broker down"},
                          headers=auth(users, "alice", Prefer="wait=1"))
    assert r.status_code == 202 and r.json()["message"]["status"] == "pending"
    assert ENQUEUE_FAILURES._value.get() == before + 1
    mid = UUID(r.json()["message"]["id"])
    stale = await reply_store.stale_pending(0, 10000)
    assert ("acme", mid) in stale
    assert ("acme", mid) not in await reply_store.stale_pending(3600, 10000)  # young ones are the enqueuer's
    worker.spawn("acme", mid)  # what the sweeper's re-enqueue leads to
    await worker.drain()
    r = await client.get(f"{P}/conversations/{cid}/messages", headers=auth(users, "alice"))
    assert [m["status"] for m in r.json()["items"] if m["role"] == "user"] == ["answered"]


async def test_blocked_messages_are_never_sent_to_a_model(
    client: httpx.AsyncClient, users: dict, worker: InProcessWorker, reply_store: Any
) -> None:
    cid = await new_conversation(client, users)
    enqueued = len(worker.enqueued)
    r = await client.post(f"{P}/conversations/{cid}/messages", json={"content": f"{INJECTION_MARKER} now"},
                          headers=auth(users, "alice"))
    assert r.status_code == 422
    blocked = UUID(r.json()["message_id"])
    assert len(worker.enqueued) == enqueued, "a blocked message must not be enqueued"
    assert await reply_store.load_pending("acme", blocked) is None  # even a forged task cannot answer it
    worker.mode = "hold"
    r = await client.post(f"{P}/conversations/{cid}/messages", json={"content": "a fair question"},
                          headers=auth(users, "alice"))
    pending = await reply_store.load_pending("acme", UUID(r.json()["message"]["id"]))
    assert pending is not None
    assert [m.content for m in pending.history] == ["a fair question"]  # the blocked prompt is not context


async def test_failed_messages_map_to_problems_on_retry(
    client: httpx.AsyncClient, users: dict, worker: InProcessWorker, reply_store: Any
) -> None:
    worker.mode = "hold"
    cid = await new_conversation(client, users)
    results = {}
    for reason in ("budget-exhausted", "upstream"):
        h = auth(users, "alice", **{"Idempotency-Key": f"f-{uuid.uuid4()}"})
        r = await client.post(f"{P}/conversations/{cid}/messages", json={"content": reason}, headers=h)
        assert r.status_code == 202
        mid = UUID(r.json()["message"]["id"])
        await reply_store.mark_failed("acme", mid, reason)
        results[reason] = await client.post(f"{P}/conversations/{cid}/messages", json={"content": reason}, headers=h)
    r = results["budget-exhausted"]
    assert r.status_code == 429 and r.json()["type"] == "urn:seclab:problem:budget-exhausted"
    assert int(r.headers["retry-after"]) > 0 and r.headers["idempotent-replayed"] == "true"
    r = results["upstream"]
    assert r.status_code == 503 and r.json()["type"] == "urn:seclab:problem:upstream-unavailable"
    assert r.json()["status_reason"] == "upstream"
    worker.held.clear()


async def test_exhausted_budget_is_429_at_accept_and_nothing_is_stored(
    app: Any, client: httpx.AsyncClient, make_token: Any, run_id: str, lab: Any, owner: asyncpg.Connection
) -> None:
    sub = f"spender-{run_id}"
    h = {"Authorization": f"Bearer {make_token(sub, ['user'], 'acme')}"}
    cid = (await client.post(f"{P}/conversations", json={}, headers=h)).json()["id"]
    hour = int(time.time() // 3600)
    key = f"seclab:budget:acme:u:{sub}:{hour}"
    await app.state.redis.set(key, lab.ai.token_budget_per_user_per_hour, ex=60)
    try:
        r = await client.post(f"{P}/conversations/{cid}/messages", json={"content": "one more"}, headers=h)
    finally:
        await app.state.redis.delete(key)
    assert r.status_code == 429, r.text
    assert r.json()["type"] == "urn:seclab:problem:budget-exhausted" and r.json()["scope"] == "user"
    assert 0 < int(r.headers["retry-after"]) <= 3601
    assert await owner.fetchval("SELECT count(*) FROM tenant_acme.messages WHERE conversation_id = $1",
                                UUID(cid)) == 0


async def _private_client(application: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=application, client=(f"2001:db8::{uuid.uuid4().hex[:4]}", 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://api.test")


async def test_redis_down_at_accept_still_stores_pending(
    settings: Settings, lab: Any, issuer: Any, users: dict, client: httpx.AsyncClient, reply_store: Any
) -> None:
    """Real Celery enqueuer and rate limiter against a closed port: 202 pending, fast, for the sweeper."""
    cid = await new_conversation(client, users)
    # No sentinels either (the lab's app.env names them): the closed port is the one Redis address.
    down = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0", "redis_user": None,
                                       "redis_password_file": None, "redis_sentinels": ""})
    application = create_app(settings=down, lab=lab, http_client=issuer.client(), screener=stand_in_screener)
    async with application.router.lifespan_context(application), await _private_client(application) as c:
        started = time.monotonic()
        r = await c.post(f"{P}/conversations/{cid}/messages", json={"content": "redis is down"},
                         headers=auth(users, "alice"))
        elapsed = time.monotonic() - started
    assert r.status_code == 202, r.text
    assert elapsed < 8, f"accepting took {elapsed:.1f}s with Redis down"
    assert ("acme", UUID(r.json()["message"]["id"])) in await reply_store.stale_pending(0, 10000)


async def test_postgres_down_is_503_before_anything_is_accepted(
    settings: Settings, lab: Any, issuer: Any, users: dict, worker: InProcessWorker
) -> None:
    down = settings.model_copy(update={"db_port": 1})
    application = create_app(settings=down, lab=lab, http_client=issuer.client(), screener=stand_in_screener,
                             enqueuer=worker.enqueue)
    enqueued = len(worker.enqueued)
    async with application.router.lifespan_context(application), await _private_client(application) as c:
        r = await c.post(f"{P}/conversations/{uuid.uuid4()}/messages", json={"content": "pg is down"},
                         headers=auth(users, "alice"))
    assert r.status_code == 503 and r.json()["type"] == "urn:seclab:problem:upstream-unavailable"
    assert len(worker.enqueued) == enqueued


async def test_prefer_wait_returns_202_when_the_answer_is_late(
    client: httpx.AsyncClient, users: dict, worker: InProcessWorker
) -> None:
    worker.mode = "hold"
    cid = await new_conversation(client, users)
    started = time.monotonic()
    r = await client.post(f"{P}/conversations/{cid}/messages", json={"content": "slow"},
                          headers=auth(users, "alice", Prefer="respond-async, wait=1"))
    assert r.status_code == 202 and r.headers["preference-applied"] == "wait=1"
    assert 0.9 <= time.monotonic() - started < 4
    loop = asyncio.get_running_loop()
    loop.call_later(0.5, worker.release)
    r = await client.post(f"{P}/conversations/{cid}/messages", json={"content": "slow"},
                          headers=auth(users, "alice", Prefer="wait=1000"))  # capped at 10 s
    assert r.status_code == 201, r.text
    assert r.headers["preference-applied"] == "wait=10"


@pytest.mark.parametrize(("header", "expected"), [
    (None, 0), ("wait=3", 3), ("respond-async, wait=4", 4), ("WAIT=2", 2), ("wait=99", 10), ("wait=-1", 0),
    ("wait=abc", 0), ("handling=strict", 0), ('wait="5"', 5), ("wait=3;foo=bar", 3),
])
def test_prefer_wait_parsing(header: str | None, expected: int) -> None:
    from app.api.routes.chat import prefer_wait

    assert prefer_wait(header) == expected


async def test_metrics_expose_the_dlq_depth_from_redis(client: httpx.AsyncClient) -> None:
    r = await client.get("/metrics")
    line = next(x for x in r.text.splitlines() if x.startswith("seclab_dlq_depth "))
    assert float(line.split()[1]) >= 0  # a number, not NaN: the app's Redis user may XLEN seclab:dlq
