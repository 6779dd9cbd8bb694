"""`lab dlq replay` publishes with a Celery app of its own: the shared app of app.worker stays as it was.

Against the private redis-server (conftest.py), in a database of its own (no worker consumes it), so
the replayed task can be read back from the broker queue exactly as the worker would receive it.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import pytest
from typer.testing import CliRunner

QUEUE_KEY = "seclab:seclab.generate"  # global_keyprefix + task_default_queue of make_celery


@pytest.fixture
def db3(redis_server: str) -> Iterator[tuple[str, Any]]:
    """Database 3 of the private Redis: a broker URL no Celery app of this process was given before."""
    import redis

    url = redis_server.rsplit("/", 1)[0] + "/3"
    r = redis.Redis.from_url(url)
    r.flushdb()
    yield url, r
    r.flushdb()
    r.close()


def _dead_letter(url: str, message_id: str) -> None:
    import redis.asyncio as aioredis

    from app.worker.dlq import DlqEntry, dlq_add

    async def add() -> None:
        r = aioredis.Redis.from_url(url)
        try:
            await dlq_add(r, DlqEntry(task="seclab.generate_reply", tenant="acme", message_id=message_id,
                                      category="upstream", attempts=4, error="ProviderError: test"))
        finally:
            await r.aclose()

    asyncio.run(add())


def _snapshot(app: Any) -> dict[str, Any]:
    return {"broker_url": app.conf.broker_url, "broker_use_ssl": copy.deepcopy(app.conf.broker_use_ssl),
            "changes": copy.deepcopy(dict(app.conf.changes))}


def test_replay_publishes_with_its_own_app_and_leaves_the_shared_one_alone(db3: tuple[str, Any]) -> None:
    from celery import current_app

    from app.worker.celery_app import celery_app
    from seclab.commands.dlq import app as dlq_cli

    url, r = db3
    mid = str(uuid4())
    _dead_letter(url, mid)
    before = _snapshot(celery_app)
    current_before = current_app._get_current_object()

    out = CliRunner().invoke(dlq_cli, ["replay", "--all", "--redis-url", url])

    assert out.exit_code == 0, out.output
    assert "replayed 1 entry" in out.output
    assert _snapshot(celery_app) == before, "lab dlq replay reconfigured the shared Celery app"
    assert current_app._get_current_object() is current_before
    assert r.xlen("seclab:dlq") == 0
    # The task is in the queue the worker consumes, in the worker's format (json, ids only).
    raw = r.lrange(QUEUE_KEY, 0, -1)
    assert len(raw) == 1
    message = json.loads(raw[0])
    assert message["headers"]["task"] == "seclab.generate_reply"
    assert message["content-type"] == "application/json"
    args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    assert args == ["acme", mid] and kwargs == {}


def test_replay_to_an_unreachable_broker_keeps_the_entry(db3: tuple[str, Any],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The stream is read from the reachable Redis, the task published to a closed port: kept, reported."""
    import seclab.commands.dlq as dlq_cmd
    from app.worker.celery_app import celery_app
    from labdef.errors import LabError

    url, r = db3
    _dead_letter(url, str(uuid4()))
    before = _snapshot(celery_app)
    real = dlq_cmd._with_redis

    async def stream_from_db3(_url: str | None, fn: Any) -> Any:
        return await real(url, fn)

    monkeypatch.setattr(dlq_cmd, "_with_redis", stream_from_db3)
    with pytest.raises(LabError, match="kept in the stream"):
        dlq_cmd.replay(entry_ids=None, all_=True, redis_url="redis://127.0.0.1:1/0")
    assert r.xlen("seclab:dlq") == 1
    assert _snapshot(celery_app) == before
