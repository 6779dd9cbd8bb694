"""The message path: accept a user's message, and read a message with its answer.

Why a service and not the routes: the POST route and the SSE route both need "a message and its reply
as the API shows them", and accepting a message is a sequence with invariants (PostgreSQL is the
source of truth; the worker's task is enqueued only after the pending row is committed; an accepted
message is never lost) that should read as one function, not as HTTP plumbing. The routes parse the
request and turn the result into a response; this module does the work.

Transactions, as few as the invariants allow (each is short; none is held while the guard, the budget,
Redis or a `Prefer: wait` sleep runs):
1. read: the conversation is the caller's, and any message stored earlier under the Idempotency-Key;
2. write: insert the message, its audit record, and read the stored row back (one commit);
then, only with `Prefer: wait`, short reads while the worker answers. A retry that finds its earlier
message is answered from the first read alone.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from app.ai.budget import BudgetExhausted, BudgetUnavailable, TokenBudget, estimate_tokens
from app.ai.screening import GuardUnavailable, Verdict
from app.core.metrics import ENQUEUE_FAILURES
from app.core.problems import Problem
from app.crud import audit, chat
from app.models.api import ExchangeOut, GuardOut, MessageCreate, MessageOut
from app.models.db import Message
from labdef import LabDefinition

log = logging.getLogger("seclab.app")

NOT_FOUND = "no such conversation"
"""404, not 403, for another user's or tenant's conversation: a 403 would confirm the id exists
(OWASP API1:2023; ASVS 4.0.3 V4.2.1)."""

Screener = Callable[[str], Awaitable[Verdict]]
Enqueuer = Callable[[str, UUID], Awaitable[bool]]


class Transactions(Protocol):
    """Short tenant transactions on demand (app.api.deps.TenantTransactions)."""

    tenant: str

    def __call__(self) -> AbstractAsyncContextManager[Any]: ...


@dataclass(frozen=True)
class Settled:
    """A message in the state the caller is answered with, and how that state was reached."""

    message: Message
    reply: Message | None
    replayed: bool
    """An Idempotency-Key retry: the message was stored by an earlier request."""
    waited: int | None
    """The `Prefer: wait` seconds applied (None: none asked)."""


def message_out(m: Message) -> MessageOut:
    guard = (GuardOut(decision=m.guard_decision, reasons=list(m.guard_reasons or []))  # type: ignore[arg-type]  # CHECK constraint in 0002
             if m.role == "user" else None)
    return MessageOut(
        id=m.id, conversation_id=m.conversation_id, role=m.role,  # type: ignore[arg-type]  # CHECK constraint in 0001
        content=m.content, guard=guard,
        status=m.status if m.role == "user" else None,  # type: ignore[arg-type]  # CHECK constraint in 0002
        status_reason=m.status_reason, provider=m.provider,
        output_decision=m.output_decision,  # type: ignore[arg-type]  # CHECK constraint in 0002
        reply_to=m.reply_to, created_at=m.created_at,
    )


def exchange_out(message: Message, reply: Message | None) -> ExchangeOut:
    return ExchangeOut(message=message_out(message), reply=message_out(reply) if reply else None)


# --- reading ------------------------------------------------------------------------------------------


async def find_exchange(db: Any, owner: str, conversation_id: UUID, message_id: UUID) -> ExchangeOut:
    """A user message of the owner's conversation with its answer (null while pending), or a 404."""
    if await chat.get_conversation(db, owner, conversation_id) is None:
        raise Problem(404, "not-found", NOT_FOUND)
    msg = await chat.get_user_message(db, conversation_id, message_id)
    if msg is None:
        raise Problem(404, "not-found", "no such message")
    return exchange_out(msg, await chat.get_reply(db, message_id))


async def read_exchange(txs: Transactions, conversation_id: UUID, message_id: UUID) -> ExchangeOut | None:
    """The exchange now, in one short transaction (None: deleted meanwhile, e.g. a tenant purge)."""
    async with txs() as db:
        msg = await chat.get_user_message(db, conversation_id, message_id)
        if msg is None:
            return None
        reply = await chat.get_reply(db, message_id)
    return exchange_out(msg, reply)


async def settle(
    txs: Transactions, message: Message, reply: Message | None, wait_s: int, *, replayed: bool
) -> Settled:
    """From the state just read, poll (short transactions, backing off 50 ms -> 500 ms, sleeping without
    a DB connection) until the message is no longer `pending` or `wait_s` is up."""
    deadline = time.monotonic() + wait_s
    delay = 0.05
    while message.status == "pending" and reply is None and (remaining := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.5)
        async with txs() as db:
            message = await chat.get_message(db, message.id)
            reply = await chat.get_reply(db, message.id)
    return Settled(message, reply, replayed, wait_s if wait_s else None)


# --- accepting ----------------------------------------------------------------------------------------


def request_hash(body: MessageCreate) -> str:
    """What an Idempotency-Key retry must repeat exactly (the whole body, keys sorted)."""
    return hashlib.sha256(json.dumps(body.model_dump(), sort_keys=True).encode()).hexdigest()


def _same_request(found: tuple[Message, Message | None], body_hash: str) -> tuple[Message, Message | None]:
    if found[0].request_hash != body_hash:
        raise Problem(422, "idempotency-key-reused", "this Idempotency-Key was used with a different body")
    return found


async def _screen(screener: Screener, content: str) -> Verdict:
    try:
        return await screener(content)
    except GuardUnavailable:
        raise Problem(503, "upstream-unavailable", "the prompt-injection guard is unavailable") from None


async def _admit(budget: TokenBudget | None, tenant: str, user: str, content: str, lab: LabDefinition) -> None:
    """Admission check only (app.ai.budget.TokenBudget.check): the client hears 429 now, before
    anything is stored; the binding reservation is the worker's (LLM10:2025, API4:2023)."""
    if budget is None:
        return
    try:
        await budget.check(tenant=tenant, user=user, amount=estimate_tokens([content]) + lab.ai.max_output_tokens)
    except BudgetExhausted as exc:
        raise Problem(429, "budget-exhausted", str(exc), headers={"Retry-After": str(exc.retry_after_s)},
                      extra={"scope": exc.scope}) from None
    except BudgetUnavailable:
        # Accept anyway: the worker's reservation fails closed until Redis is back, so no model
        # call goes unmetered, and the message waits `pending` instead of being refused.
        log.warning("budget admission check skipped: redis unavailable")


async def _store(
    db: Any, conversation_id: UUID, author: str, content: str, verdict: Verdict, key: str | None, body_hash: str
) -> Message | None:
    """Insert the message and its audit record and read the row back, in the caller's transaction
    (None: a concurrent retry with the same Idempotency-Key committed first)."""
    msg_id = await chat.insert_user_message(
        db, conversation_id, author, content, verdict.decision, verdict.reasons, key, body_hash,
    )
    if msg_id is None:
        return None
    blocked = verdict.decision == "block"
    detail: dict[str, Any] = {"conversation": str(conversation_id), "guard": verdict.decision}
    if blocked:
        detail["reasons"] = verdict.reasons[:5]
    await audit.record(db, author, "message.blocked" if blocked else "message.create", str(msg_id), detail)
    return await chat.get_message(db, msg_id)


@dataclass(frozen=True)
class MessagePath:
    """What accepting a message needs from the running app (injected by the route)."""

    txs: Transactions
    lab: LabDefinition
    screener: Screener
    budget: TokenBudget | None
    enqueue: Enqueuer

    async def accept(
        self, conversation_id: UUID, author: str, body: MessageCreate, key: str | None, wait_s: int
    ) -> Settled:
        """Store the message `pending` (or `blocked`), commit, then enqueue the worker's task (ids only);
        an Idempotency-Key retry gets the first result. An accepted message is never lost: if the enqueue
        fails (Redis down) the sweeper enqueues it later; if PostgreSQL is down nothing is accepted (503)."""
        txs, body_hash = self.txs, request_hash(body)
        async with txs() as db:
            if await chat.get_conversation(db, author, conversation_id) is None:
                raise Problem(404, "not-found", NOT_FOUND)
            earlier = await chat.find_by_idempotency_key(db, conversation_id, author, key) if key else None
        if earlier is not None:
            return await settle(txs, *_same_request(earlier, body_hash), wait_s, replayed=True)
        verdict = await _screen(self.screener, body.content)
        if verdict.decision != "block":
            await _admit(self.budget, txs.tenant, author, body.content, self.lab)
        async with txs() as db:
            stored = await _store(db, conversation_id, author, body.content, verdict, key, body_hash)
        # committed: from here on the message is accepted and must end answered or dead-lettered
        if stored is None:  # a concurrent retry with the same key committed first
            async with txs() as db:
                earlier = await chat.find_by_idempotency_key(db, conversation_id, author, key or "")
            if earlier is None:
                raise Problem(409, "conflict", "a request with this Idempotency-Key is in progress")
            return await settle(txs, *_same_request(earlier, body_hash), wait_s, replayed=True)
        if verdict.decision == "block":
            return await settle(txs, stored, None, 0, replayed=False)
        if not await self.enqueue(txs.tenant, stored.id):
            ENQUEUE_FAILURES.inc()  # stored `pending`: the sweeper enqueues it (app.worker.tasks.sweep)
        return await settle(txs, stored, None, wait_s, replayed=False)
