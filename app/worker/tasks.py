"""Tasks: `seclab.generate_reply(tenant, message_id)` and the periodic `seclab.sweep_pending`.

The task payload is two ids, never message text: the broker (and Flower, and the DLQ) must not be a
second store of user data (OWASP LLM02:2025; ASVS 4.0.3 V8.3.4). The worker reads the text from
PostgreSQL under the tenant's role.

Retries: upstream (provider) and database errors are transient: retried with exponential backoff
and full jitter up to `max_retries`; validation errors cannot improve by retrying and go to the DLQ at
once; a token budget that is exhausted is a policy outcome, not a failure: the message is marked
failed with that reason and not dead-lettered. Celery tasks are sync: each worker process keeps ONE
event loop for its async clients (solo/prefork pools run one task per process at a time).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any
from uuid import UUID

from celery import Celery, Task
from prometheus_client import Counter

from app.ai.budget import BudgetExhausted, BudgetUnavailable
from app.worker.celery_app import celery_app, load_worker_settings
from app.worker.dlq import Category, DlqEntry, categorize, dlq_add, scrub_error
from app.worker.runtime import Runtime
from labdef import NAME_PATTERN

log = logging.getLogger("seclab.worker")

TASK_OUTCOMES = Counter("seclab_worker_tasks_total", "Generation task outcomes", ["outcome"])
RETRYABLE: frozenset[Category] = frozenset({"upstream", "database"})
TENANT_RE = NAME_PATTERN  # labdef.NAME_RE: tenants become role/schema names

W = load_worker_settings()
_loop: asyncio.AbstractEventLoop | None = None
_runtime: Runtime | None = None


def run[T](coro: Coroutine[Any, Any, T]) -> T:
    global _loop
    if _loop is None or _loop.is_closed():
        _loop = asyncio.new_event_loop()
    return _loop.run_until_complete(coro)


async def runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        module, _, attr = W.runtime.partition(":")
        factory: Callable[[], Awaitable[Runtime]] = getattr(importlib.import_module(module), attr)
        _runtime = await factory()
    return _runtime


def backoff(retries: int) -> float:
    """Full jitter: uniform(0, min(max, base * 2^retries)), never below a tenth of the base."""
    return max(W.retry_base_s / 10, random.uniform(0, min(W.retry_max_s, W.retry_base_s * 2**retries)))


def _category(exc: BaseException) -> Category:
    if isinstance(exc, BudgetUnavailable):
        return "upstream"  # Redis for the budget: a transient dependency like a provider
    return categorize(exc)


async def answer(tenant: str, message_id: str, rt: Runtime | None = None) -> str:
    """Answer one pending message, once. Returns the outcome; raises to retry / dead-letter.

    `rt`: an explicit runtime (tests run the task body in-process); default the process's own."""
    if not TENANT_RE.match(tenant):
        raise ValueError("invalid tenant name")
    mid = UUID(message_id)  # ValueError: validation
    rt = rt or await runtime()
    msg = await rt.store.load_pending(tenant, mid)
    if msg is None:
        return "skipped"  # answered, blocked or gone: idempotent no-op
    try:
        result = await rt.gateway.complete(
            msg.history, conversation_id=str(msg.conversation_id), user=msg.author_sub, tenant=tenant
        )
    except BudgetExhausted:
        await rt.store.mark_failed(tenant, mid, "budget-exhausted")
        return "budget-exhausted"
    return "answered" if await rt.store.save_reply(tenant, mid, result) else "duplicate"


async def dead_letter(task: str, tenant: str, message_id: str, exc: BaseException, attempts: int) -> None:
    """XADD to seclab:dlq, then mark the message failed: the DB keeps the truth, the DLQ the evidence.

    If Redis is down here the exception propagates and the message stays `pending`: the sweeper
    re-enqueues it later, so nothing is lost."""
    rt = await runtime()
    category = _category(exc)
    entry = DlqEntry(task=task, tenant=scrub_error(tenant)[:64], message_id=scrub_error(message_id)[:64],
                     category=category, attempts=attempts, error=scrub_error(exc))
    await dlq_add(rt.redis, entry, maxlen=W.dlq_maxlen)
    try:
        await rt.store.mark_failed(tenant, UUID(message_id), category)
    except ValueError:
        pass  # not a message id: nothing to mark


GENERATE_TASK = "seclab.generate_reply"


@celery_app.task(bind=True, name=GENERATE_TASK, acks_late=True, reject_on_worker_lost=True,
                 max_retries=W.max_retries)
def generate_reply(self: Task, tenant: str, message_id: str) -> str:
    try:
        outcome = run(answer(tenant, message_id))
    except Exception as exc:  # noqa: BLE001 - categorized below: retry or dead-letter
        category = _category(exc)
        retries = self.request.retries
        if category in RETRYABLE and retries < (self.max_retries or 0):
            TASK_OUTCOMES.labels("retry").inc()
            log.warning("generation retry", extra={"category": category, "retries": retries})
            raise self.retry(exc=exc, countdown=backoff(retries)) from None
        run(dead_letter(self.name, tenant, message_id, exc, retries + 1))
        TASK_OUTCOMES.labels("dead-lettered").inc()
        log.error("generation dead-lettered", extra={"category": category, "attempts": retries + 1})
        return "dead-lettered"
    TASK_OUTCOMES.labels(outcome).inc()
    return outcome


async def sweep() -> int:
    """Re-enqueue messages left `pending` (the enqueue after the DB commit failed, e.g. Redis was down).

    A short-lived `SET NX` marker per message keeps consecutive sweeps from queueing it again and again;
    duplicates that still happen are harmless (the task is idempotent)."""
    rt = await runtime()
    n = 0
    for tenant, mid in await rt.store.stale_pending(W.sweep_older_than_s, W.sweep_batch):
        if await rt.redis.set(f"seclab:sweep:{tenant}:{mid}", "1", nx=True, ex=max(1, int(W.sweep_older_than_s))):
            generate_reply.apply_async(args=[tenant, str(mid)])
            n += 1
    if n:
        log.info("sweeper re-enqueued pending messages", extra={"count": n})
    return n


@celery_app.task(name="seclab.sweep_pending", acks_late=True)
def sweep_pending() -> int:
    return run(sweep())


async def enqueue_reply(tenant: str, message_id: UUID, *, celery: Celery | None = None,
                        timeout_s: float = 5.0) -> bool:
    """For the API, AFTER the pending message is committed: True if the broker took the task.

    False (broker unreachable or slow) is not an error for the client: the message is stored `pending`
    and the sweeper will enqueue it. `celery`: the API's own client (its settings, its Redis ACL user
    `seclab_app`); default the worker module's app. Runs in a thread: kombu's publish is blocking; a
    publish that outlives `timeout_s` may still land later, which is harmless (the task is idempotent)."""
    args = [tenant, str(message_id)]

    def publish() -> None:
        if celery is None:
            generate_reply.apply_async(args=args, retry=False)
        else:
            celery.send_task(GENERATE_TASK, args=args, retry=False)

    try:
        await asyncio.wait_for(asyncio.to_thread(publish), timeout=timeout_s)
        return True
    except Exception as exc:  # noqa: BLE001 - the sweeper enqueues it later
        log.warning("enqueue failed; the sweeper will pick the message up", extra={"error": type(exc).__name__})
        return False
