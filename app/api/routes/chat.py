"""Conversations and messages of the calling user, inside the caller's tenant."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, status
from fastapi.responses import JSONResponse

from app.ai.budget import WINDOW_S, BudgetExhausted, BudgetUnavailable, estimate_tokens
from app.ai.screening import GuardUnavailable
from app.api.deps import (
    BudgetDep,
    ChatUser,
    EnqueueDep,
    LabDep,
    PageDep,
    ScreenerDep,
    TenantDB,
    TenantTransactions,
    TenantTxs,
)
from app.core.metrics import ENQUEUE_FAILURES
from app.core.pagination import encode_cursor
from app.core.problems import MEDIA_TYPE, Problem, problem_body
from app.crud import audit, chat
from app.models.api import (
    ConversationCreate,
    ConversationOut,
    ConversationPage,
    ExchangeOut,
    GuardOut,
    MessageCreate,
    MessageOut,
    MessagePage,
    ResourceId,
)
from app.models.db import Conversation, Message

router = APIRouter(prefix="/conversations", tags=["chat"])
log = logging.getLogger("seclab.app")

WAIT_MAX_S = 10
"""`Prefer: wait=N` is capped: a request may hold its client connection (and an ASGI slot) this long at
most, never a DB connection (it polls with short transactions), so slow models cannot exhaust the
server (OWASP API4:2023 unrestricted resource consumption)."""

IDEMPOTENCY_KEY_RE = re.compile(r"^[A-Za-z0-9._:-]{1,255}$")
NOT_FOUND = "no such conversation"
"""404, not 403, for another user's or tenant's conversation: a 403 would confirm the id exists
(OWASP API1:2023; ASVS 4.0.3 V4.2.1)."""


def conversation_out(c: Conversation) -> ConversationOut:
    return ConversationOut(id=c.id, title=c.title, created_at=c.created_at)


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


def _blocked(m: Message, replayed: bool) -> JSONResponse:
    """422 prompt-injection; the message is stored with its verdict (evidence for the tenant admin
    and the audit log) but never answered (OWASP LLM01:2025)."""
    body = problem_body(
        422, "prompt-injection", "the message was refused and not sent to a model",
        guard={"decision": m.guard_decision, "reasons": list(m.guard_reasons or [])}, message_id=str(m.id),
    )
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return JSONResponse(body, status_code=422, media_type=MEDIA_TYPE, headers=headers)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ConversationOut)
async def create_conversation(body: ConversationCreate, user: ChatUser, db: TenantDB) -> ConversationOut:
    conv = await chat.create_conversation(db, user.sub, body.title)
    await audit.record(db, user.sub, "conversation.create", str(conv.id))
    return conversation_out(conv)


@router.get("", response_model=ConversationPage)
async def list_conversations(user: ChatUser, db: TenantDB, page: PageDep) -> ConversationPage:
    rows, nxt = await chat.list_conversations(db, user.sub, page.limit, page.after)
    return ConversationPage(
        items=[conversation_out(c) for c in rows], next_cursor=encode_cursor(nxt) if nxt else None
    )


@router.get("/{conversation_id}", response_model=ConversationOut)
async def get_conversation(conversation_id: ResourceId, user: ChatUser, db: TenantDB) -> ConversationOut:
    conv = await chat.get_conversation(db, user.sub, conversation_id)
    if conv is None:
        raise Problem(404, "not-found", NOT_FOUND)
    return conversation_out(conv)


@router.get("/{conversation_id}/messages", response_model=MessagePage)
async def list_messages(conversation_id: ResourceId, user: ChatUser, db: TenantDB, page: PageDep) -> MessagePage:
    if await chat.get_conversation(db, user.sub, conversation_id) is None:
        raise Problem(404, "not-found", NOT_FOUND)
    rows, nxt = await chat.list_messages(db, conversation_id, page.limit, page.after)
    return MessagePage(items=[message_out(m) for m in rows], next_cursor=encode_cursor(nxt) if nxt else None)


def prefer_wait(prefer: str | None) -> int:
    """Seconds from `Prefer: wait=N` (RFC 7240 §4.3), capped at WAIT_MAX_S; 0 if absent or not understood
    (RFC 7240 §2: a preference the server does not understand is ignored, not an error)."""
    if not prefer:
        return 0
    for pref in prefer.split(","):
        name, _, value = pref.split(";", 1)[0].strip().partition("=")
        if name.strip().lower() == "wait":
            value = value.strip().strip('"')
            if value.isdigit() and len(value) <= 6:
                return min(int(value), WAIT_MAX_S)
    return 0


def _retry_after_window() -> str:
    """Seconds until the budget's clock hour turns (app.ai.budget windows)."""
    now = time.time()
    return str(int((int(now // WINDOW_S) + 1) * WINDOW_S - now) + 1)


def _outcome(msg: Message, reply: Message | None, *, replayed: bool, waited: int | None) -> JSONResponse:
    """The response for a message in its current state; the same state always gives the same response,
    which is what makes an Idempotency-Key retry return "the first result"."""
    headers: dict[str, str] = {}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    if waited is not None:
        headers["Preference-Applied"] = f"wait={waited}"
    if msg.status == "blocked" or msg.guard_decision == "block":
        return _blocked(msg, replayed)
    if reply is not None:
        out = ExchangeOut(message=message_out(msg), reply=message_out(reply))
        return JSONResponse(out.model_dump(mode="json"), status_code=201, headers=headers)
    if msg.status == "failed":
        extra = {"message_id": str(msg.id), "message_status": "failed", "status_reason": msg.status_reason}
        if msg.status_reason == "budget-exhausted":
            headers["Retry-After"] = _retry_after_window()
            body = problem_body(429, "budget-exhausted", "the token budget was spent before this message was answered",
                                **extra)
            return JSONResponse(body, status_code=429, media_type=MEDIA_TYPE, headers=headers)
        body = problem_body(503, "upstream-unavailable", "no model provider could answer this message; it is kept "
                            "for a replay", **extra)
        return JSONResponse(body, status_code=503, media_type=MEDIA_TYPE, headers=headers)
    out = ExchangeOut(message=message_out(msg), reply=None)
    return JSONResponse(out.model_dump(mode="json"), status_code=202, headers=headers)


async def _await_outcome(txs: TenantTransactions, msg_id: UUID, wait_s: int, *, replayed: bool) -> JSONResponse:
    """Read the message (and reply) under the tenant role; with `wait_s` poll until it is no longer
    `pending` or the time is up. Polls back off 50 ms -> 500 ms and sleep without a DB connection."""
    deadline = time.monotonic() + wait_s
    delay = 0.05
    while True:
        async with txs() as db:
            msg = await chat.get_message(db, msg_id)
            reply = await chat.get_reply(db, msg_id)
        remaining = deadline - time.monotonic()
        if msg.status != "pending" or reply is not None or remaining <= 0:
            return _outcome(msg, reply, replayed=replayed, waited=wait_s if wait_s else None)
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.5)


@router.post(
    "/{conversation_id}/messages",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ExchangeOut,
    responses={
        201: {"description": "answered (within `Prefer: wait`, or an idempotent retry of an answered message)",
              "model": ExchangeOut},
        422: {"description": "validation error or prompt-injection refusal (problem+json)"},
        429: {"description": "rate limit or token budget exhausted (problem+json, Retry-After)"},
        503: {"description": "database, guard or (after the worker gave up) every model provider unavailable"},
    },
)
async def post_message(
    conversation_id: ResourceId,
    body: MessageCreate,
    user: ChatUser,
    txs: TenantTxs,
    lab: LabDep,
    screener: ScreenerDep,
    budget: BudgetDep,
    enqueue: EnqueueDep,
    idempotency_key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", max_length=255, pattern=r"^[A-Za-z0-9._:-]{1,255}$",
               description="retry-safe POST: a retry with the same key returns the first result"),
    ] = None,
    prefer: Annotated[
        str | None,
        Header(alias="Prefer", max_length=200,
               description="RFC 7240 `wait=N` (N <= 10): wait up to N s for the answer (201) instead of 202"),
    ] = None,
) -> Any:
    """Accept a message: store it `pending` (PostgreSQL is the source of truth), commit, then enqueue
    the worker's task (ids only). 202 with `reply: null`; 201 with the reply if it came within
    `Prefer: wait`. An accepted message is never lost: if the enqueue fails (Redis down) the sweeper
    enqueues it later; if PostgreSQL is down nothing is accepted (503)."""
    if len(body.content) > lab.limits.message_max_chars:
        raise Problem(422, "validation", f"content must be <= {lab.limits.message_max_chars} characters")
    if idempotency_key is not None and not IDEMPOTENCY_KEY_RE.match(idempotency_key):
        raise Problem(422, "validation", "invalid Idempotency-Key")
    wait_s = prefer_wait(prefer)
    request_hash = hashlib.sha256(json.dumps(body.model_dump(), sort_keys=True).encode()).hexdigest()

    async def prior_id() -> UUID | None:
        """The message stored earlier under this Idempotency-Key (same body), if any."""
        async with txs() as db:
            found = await chat.find_by_idempotency_key(db, conversation_id, user.sub, idempotency_key or "")
        if found is None:
            return None
        if found[0].request_hash != request_hash:
            raise Problem(422, "idempotency-key-reused", "this Idempotency-Key was used with a different body")
        return found[0].id

    async with txs() as db:
        if await chat.get_conversation(db, user.sub, conversation_id) is None:
            raise Problem(404, "not-found", NOT_FOUND)
    if idempotency_key is not None and (first := await prior_id()) is not None:
        return await _await_outcome(txs, first, wait_s, replayed=True)
    try:
        verdict = await screener(body.content)
    except GuardUnavailable:
        raise Problem(503, "upstream-unavailable", "the prompt-injection guard is unavailable") from None
    if verdict.decision != "block" and budget is not None:
        # Admission check only (app.ai.budget.TokenBudget.check): the client hears 429 now, before
        # anything is stored; the binding reservation is the worker's (LLM10:2025, API4:2023).
        try:
            await budget.check(tenant=txs.tenant, user=user.sub,
                               amount=estimate_tokens([body.content]) + lab.ai.max_output_tokens)
        except BudgetExhausted as exc:
            raise Problem(429, "budget-exhausted", str(exc), headers={"Retry-After": str(exc.retry_after_s)},
                          extra={"scope": exc.scope}) from None
        except BudgetUnavailable:
            # Accept anyway: the worker's reservation fails closed until Redis is back, so no model
            # call goes unmetered, and the message waits `pending` instead of being refused.
            log.warning("budget admission check skipped: redis unavailable")
    async with txs() as db:
        msg_id = await chat.insert_user_message(
            db, conversation_id, user.sub, body.content, verdict.decision, verdict.reasons, idempotency_key,
            request_hash,
        )
        if msg_id is not None:
            action = "message.blocked" if verdict.decision == "block" else "message.create"
            detail: dict[str, Any] = {"conversation": str(conversation_id), "guard": verdict.decision}
            if verdict.decision == "block":
                detail["reasons"] = verdict.reasons[:5]
            await audit.record(db, user.sub, action, str(msg_id), detail)
    # committed: from here on the message is accepted and must end answered or dead-lettered
    if msg_id is None:  # a concurrent retry with the same key committed first
        first = await prior_id()
        if first is None:
            raise Problem(409, "conflict", "a request with this Idempotency-Key is in progress")
        return await _await_outcome(txs, first, wait_s, replayed=True)
    if verdict.decision != "block" and not await enqueue(txs.tenant, msg_id):
        ENQUEUE_FAILURES.inc()  # stored `pending`: the sweeper enqueues it (app.worker.tasks.sweep)
    return await _await_outcome(txs, msg_id, 0 if verdict.decision == "block" else wait_s, replayed=False)
