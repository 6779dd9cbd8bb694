"""Conversations and messages of the calling user, inside the caller's tenant."""

from __future__ import annotations

import re
import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, status
from fastapi.responses import JSONResponse

from app.ai.budget import WINDOW_S
from app.api.deps import (
    BudgetDep,
    ChatUser,
    EnqueueDep,
    LabDep,
    PageDep,
    ScreenerDep,
    TenantDB,
    TenantTxs,
)
from app.core.pagination import encode_cursor
from app.core.problems import MEDIA_TYPE, Problem, problem_body
from app.crud import audit, chat
from app.models.api import (
    ConversationCreate,
    ConversationOut,
    ConversationPage,
    ExchangeOut,
    MessageCreate,
    MessagePage,
    ResourceId,
)
from app.models.db import Conversation, Message
from app.services.messages import NOT_FOUND, MessagePath, Settled, exchange_out, message_out

router = APIRouter(prefix="/conversations", tags=["chat"])

WAIT_MAX_S = 10
"""`Prefer: wait=N` is capped: a request may hold its client connection (and an ASGI slot) this long at
most, never a DB connection (it polls with short transactions), so slow models cannot exhaust the
server (OWASP API4:2023 unrestricted resource consumption)."""

IDEMPOTENCY_KEY_RE = re.compile(r"^[A-Za-z0-9._:-]{1,255}$")


def conversation_out(c: Conversation) -> ConversationOut:
    return ConversationOut(id=c.id, title=c.title, created_at=c.created_at)


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


def _outcome(settled: Settled) -> JSONResponse:
    """The response for a message in its current state; the same state always gives the same response,
    which is what makes an Idempotency-Key retry return "the first result"."""
    msg, reply, replayed, waited = settled.message, settled.reply, settled.replayed, settled.waited
    headers: dict[str, str] = {}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    if waited is not None:
        headers["Preference-Applied"] = f"wait={waited}"
    if msg.status == "blocked" or msg.guard_decision == "block":
        return _blocked(msg, replayed)
    if reply is not None:
        return JSONResponse(exchange_out(msg, reply).model_dump(mode="json"), status_code=201, headers=headers)
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
    return JSONResponse(exchange_out(msg, None).model_dump(mode="json"), status_code=202, headers=headers)


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
    """Accept a message (app.services.messages.MessagePath.accept): 202 with `reply: null`; 201 with the
    reply if it came within `Prefer: wait`; an Idempotency-Key retry gets the first result."""
    if len(body.content) > lab.limits.message_max_chars:
        raise Problem(422, "validation", f"content must be <= {lab.limits.message_max_chars} characters")
    if idempotency_key is not None and not IDEMPOTENCY_KEY_RE.match(idempotency_key):
        raise Problem(422, "validation", "invalid Idempotency-Key")
    path = MessagePath(txs=txs, lab=lab, screener=screener, budget=budget, enqueue=enqueue)
    return _outcome(await path.accept(conversation_id, user.sub, body, idempotency_key, prefer_wait(prefer)))
