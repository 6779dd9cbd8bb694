"""GET one message, and follow it as Server-Sent Events, against the lab's PostgreSQL (tenant roles).

The worker is the in-process STAND-IN of conftest.py; the stream must show `pending`, then the checked
answer, then `done`, and must refuse other users' and other conversations' ids with a 404 problem.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from app.api.routes import message_events
from tests.app.conftest import InProcessWorker, auth

pytestmark = pytest.mark.integration  # live: the lab's PostgreSQL and Redis

P = "/api/v1"


def parse_sse(text: str) -> list[tuple[str, str]]:
    """(event, data) pairs of a text/event-stream body; comments and `retry:` lines are skipped."""
    events: list[tuple[str, str]] = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":")
                      and ": " in line)
        if "event" in fields:
            events.append((fields["event"], fields.get("data", "")))
    return events


async def _pending_message(client: httpx.AsyncClient, users: dict, worker: InProcessWorker) -> tuple[str, str]:
    worker.mode = "hold"
    r = await client.post(f"{P}/conversations", json={"title": "events"}, headers=auth(users, "dana"))
    cid = r.json()["id"]
    r = await client.post(f"{P}/conversations/{cid}/messages", json={"content": "explain HSTS"},
                          headers=auth(users, "dana"))
    assert r.status_code == 202, r.text
    return cid, r.json()["message"]["id"]


async def test_stream_shows_pending_then_the_answer_then_done(
    client: httpx.AsyncClient, users: dict, worker: InProcessWorker
) -> None:
    cid, mid = await _pending_message(client, users, worker)
    stream = asyncio.create_task(
        client.get(f"{P}/conversations/{cid}/messages/{mid}/events", headers=auth(users, "dana")))
    await asyncio.sleep(0.3)
    worker.release()
    await worker.drain()
    r = await asyncio.wait_for(stream, 20)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["x-accel-buffering"] == "no" and "no-store" in r.headers["cache-control"]
    events = parse_sse(r.text)
    names = [e for e, _ in events]
    assert names[0] == "message" and names[-1] == "done", names
    first, last = json.loads(events[0][1]), json.loads(events[-2][1])
    assert first["message"]["status"] == "pending" and first["reply"] is None
    assert last["message"]["status"] == "answered"
    assert last["reply"]["role"] == "assistant" and last["reply"]["content"]
    assert json.loads(events[-1][1]) == {"status": "answered"}


async def test_get_message_returns_the_exchange(
    client: httpx.AsyncClient, users: dict, worker: InProcessWorker
) -> None:
    cid, mid = await _pending_message(client, users, worker)
    r = await client.get(f"{P}/conversations/{cid}/messages/{mid}", headers=auth(users, "dana"))
    assert r.status_code == 200 and r.json()["reply"] is None and r.json()["message"]["id"] == mid
    worker.release()
    await worker.drain()
    r = await client.get(f"{P}/conversations/{cid}/messages/{mid}", headers=auth(users, "dana"))
    assert r.json()["message"]["status"] == "answered" and r.json()["reply"]["reply_to"] == mid


async def test_other_users_and_conversations_get_404_problems(
    client: httpx.AsyncClient, users: dict, worker: InProcessWorker
) -> None:
    cid, mid = await _pending_message(client, users, worker)
    r = await client.post(f"{P}/conversations", json={"title": "other"}, headers=auth(users, "dana"))
    other_cid = r.json()["id"]
    for path in (f"{cid}/messages/{mid}", f"{cid}/messages/{mid}/events"):
        for who in ("carol", "bob"):  # same tenant, other user; other tenant
            if who not in users:
                continue
            r = await client.get(f"{P}/conversations/{path}", headers=auth(users, who))
            assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json", (who, r.text)
    # dana's own message id under another of her conversations: no cross-conversation lookups
    for suffix in ("", "/events"):
        r = await client.get(f"{P}/conversations/{other_cid}/messages/{mid}{suffix}", headers=auth(users, "dana"))
        assert r.status_code == 404, r.text
    worker.release()
    await worker.drain()


async def test_stream_times_out_while_pending(
    client: httpx.AsyncClient, users: dict, worker: InProcessWorker, monkeypatch: Any
) -> None:
    monkeypatch.setattr(message_events, "STREAM_MAX_S", 0.5)
    monkeypatch.setattr(message_events.exchange_events, "__kwdefaults__", {"max_s": 0.5, "heartbeat_s": 0.1})
    cid, mid = await _pending_message(client, users, worker)
    r = await client.get(f"{P}/conversations/{cid}/messages/{mid}/events", headers=auth(users, "dana"))
    events = parse_sse(r.text)
    assert [e for e, _ in events] == ["message", "timeout"], events
    assert ": keep-alive" in r.text
    worker.release()
    await worker.drain()
