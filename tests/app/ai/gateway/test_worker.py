"""A real Celery worker (solo pool) against the private redis-server: retries, DLQ, replay, sweeper, idempotency."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from uuid import UUID, uuid4

import pytest
from typer.testing import CliRunner

from tests.app.ai.gateway.conftest import ROOT
from tests.app.ai.gateway.worker_runtime import CALLS_KEY, FAIL_KEY, add_pending, msg_key


@pytest.fixture(scope="module")
def worker(redis_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from app.worker.celery_app import celery_app

    celery_app.conf.broker_url = redis_server  # this process publishes to the private Redis too
    # ...in plain TCP: the module-level app may have been configured for the lab's TLS Redis.
    celery_app.conf.broker_use_ssl = None
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    env = {**os.environ, "SECLAB_ENV_FILE": "/nonexistent", "SECLAB_REDIS_URL": redis_server,
           "SECLAB_WORKER_RUNTIME": "tests.app.ai.gateway.worker_runtime:build", "SECLAB_WORKER_RETRY_BASE_S": "0.1",
           "SECLAB_WORKER_RETRY_MAX_S": "0.2", "SECLAB_WORKER_MAX_RETRIES": "3",
           "SECLAB_WORKER_SWEEP_OLDER_THAN_S": "60", "PYTHONPATH": str(ROOT)}
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "app.worker.celery_app", "worker", "--pool", "solo",
             "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", "aitest@localhost",
             "--loglevel", "INFO"], cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while b"ready." not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("worker did not start:\n" + log.read_text()[-3000:])
            time.sleep(0.2)
        yield str(log)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
async def wr(worker: str, redis_server: str) -> AsyncIterator[Any]:
    import redis.asyncio as aioredis

    from app.worker.dlq import dlq_purge

    r = aioredis.Redis.from_url(redis_server)
    for k in await r.keys("test:*"):
        await r.delete(k)
    await dlq_purge(r)
    yield r
    await r.aclose()


async def wait_for(cond: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


async def status(r: Any, tenant: str, mid: UUID) -> str | None:
    v = await r.hget(msg_key(tenant, mid), "status")
    return v.decode() if v else None


async def test_flaky_provider_is_retried_then_answered_once(wr: Any) -> None:
    from app.worker.tasks import enqueue_reply

    mid = uuid4()
    await wr.set(FAIL_KEY, 2)
    await add_pending(wr, "acme", mid, "hello")
    assert await enqueue_reply("acme", mid)
    await wait_for(lambda: _is(wr, "acme", mid, "answered"))
    assert int(await wr.get(CALLS_KEY)) == 3
    assert await wr.hget(msg_key("acme", mid), "answers") == b"1"
    assert await wr.hget(msg_key("acme", mid), "reply") == b"fine answer"
    assert await wr.xlen("seclab:dlq") == 0


async def _is(r: Any, tenant: str, mid: UUID, want: str) -> bool:
    return await status(r, tenant, mid) == want


async def test_always_failing_goes_to_dlq_then_replay_answers_once(wr: Any, redis_server: str) -> None:
    from app.worker.dlq import dlq_list
    from app.worker.tasks import enqueue_reply
    from seclab.commands.dlq import app as dlq_cli

    mid = uuid4()
    await wr.set(FAIL_KEY, 10**6)
    await add_pending(wr, "acme", mid, "my mail is alice@acme.example")
    assert await enqueue_reply("acme", mid)
    await wait_for(lambda: _dlq_len(wr, 1))
    [(_, entry)] = await dlq_list(wr)
    assert entry.category == "upstream" and entry.attempts == 4 and entry.message_id == str(mid)
    assert "alice@acme.example" not in entry.error and "flaky:error" in entry.error
    assert await status(wr, "acme", mid) == "failed"
    assert int(await wr.get(CALLS_KEY)) == 4

    out = await asyncio.to_thread(CliRunner().invoke, dlq_cli, ["list", "--redis-url", redis_server])
    assert out.exit_code == 0 and "upstream" in out.output and str(mid) in out.output

    await wr.set(FAIL_KEY, 0)  # the upstream is fixed
    out = await asyncio.to_thread(CliRunner().invoke, dlq_cli, ["replay", "--all", "--redis-url", redis_server])
    assert out.exit_code == 0, out.output
    assert "replayed 1 entry" in out.output
    await wait_for(lambda: _is(wr, "acme", mid, "answered"))
    assert await wr.xlen("seclab:dlq") == 0

    # a duplicate delivery of an answered message is a no-op: no model call, no second answer
    calls = int(await wr.get(CALLS_KEY))
    assert await enqueue_reply("acme", mid)
    await asyncio.sleep(1.0)
    assert int(await wr.get(CALLS_KEY)) == calls
    assert await wr.hget(msg_key("acme", mid), "answers") == b"1"


async def _dlq_len(r: Any, n: int) -> bool:
    return int(await r.xlen("seclab:dlq")) == n


async def test_invalid_payload_is_dead_lettered_at_once_as_validation(wr: Any) -> None:
    from app.worker.dlq import dlq_list
    from app.worker.tasks import enqueue_reply

    assert await enqueue_reply("Bad;Tenant", uuid4())
    await wait_for(lambda: _dlq_len(wr, 1))
    [(_, entry)] = await dlq_list(wr)
    assert entry.category == "validation" and entry.attempts == 1


async def test_sweeper_enqueues_stale_pending_messages(wr: Any) -> None:
    from app.worker.celery_app import celery_app

    old, fresh = uuid4(), uuid4()
    await wr.set(FAIL_KEY, 0)
    await add_pending(wr, "globex", old, "lost when Redis was down", age_s=600)
    await add_pending(wr, "globex", fresh, "just accepted", age_s=0)
    celery_app.send_task("seclab.sweep_pending")
    await wait_for(lambda: _is(wr, "globex", old, "answered"))
    assert await status(wr, "globex", fresh) == "pending"  # young messages are the enqueuer's job


def test_purge_needs_yes(redis_server: str) -> None:
    from seclab.commands.dlq import app as dlq_cli

    out = CliRunner().invoke(dlq_cli, ["purge", "--redis-url", redis_server])
    assert out.exit_code != 0


def test_scrub_error_pseudonymizes_and_bounds() -> None:
    from app.ai.providers.base import ProviderError
    from app.worker.dlq import categorize, scrub_error

    e = scrub_error(ProviderError("upstream said: alice@acme.example " + "x" * 1000))
    assert "alice@acme.example" not in e and "<EMAIL_1>" in e and len(e) == 500
    assert categorize(ProviderError("x")) == "upstream" and categorize(ValueError("x")) == "validation"
    assert categorize(RuntimeError("x")) == "unknown"
