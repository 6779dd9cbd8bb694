"""Conversations and messages of the calling user, inside the caller's tenant."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Request, status
from fastapi.responses import JSONResponse

from app.ai.providers.base import ChatMessage, ProviderError
from app.ai.screening import GuardUnavailable
from app.api.deps import ChatUser, LabDep, PageDep, ProviderDep, ScreenerDep, TenantDB
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
)
from app.models.db import Conversation, Message

router = APIRouter(prefix="/conversations", tags=["chat"])

IDEMPOTENCY_KEY_RE = re.compile(r"^[A-Za-z0-9._:-]{1,255}$")
NOT_FOUND = "no such conversation"
"""404, not 403, for another user's or tenant's conversation: a 403 would confirm the id exists
(OWASP API1:2023; ASVS 4.0.3 V4.2.1)."""


def conversation_out(c: Conversation) -> ConversationOut:
    return ConversationOut(id=c.id, title=c.title, created_at=c.created_at)


def message_out(m: Message) -> MessageOut:
    guard = GuardOut(decision=m.guard_decision, reasons=list(m.guard_reasons or [])) if m.role == "user" else None
    return MessageOut(
        id=m.id, conversation_id=m.conversation_id, role=m.role, content=m.content, guard=guard,
        provider=m.provider, reply_to=m.reply_to, created_at=m.created_at,
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
async def get_conversation(conversation_id: UUID, user: ChatUser, db: TenantDB) -> ConversationOut:
    conv = await chat.get_conversation(db, user.sub, conversation_id)
    if conv is None:
        raise Problem(404, "not-found", NOT_FOUND)
    return conversation_out(conv)


@router.get("/{conversation_id}/messages", response_model=MessagePage)
async def list_messages(conversation_id: UUID, user: ChatUser, db: TenantDB, page: PageDep) -> MessagePage:
    if await chat.get_conversation(db, user.sub, conversation_id) is None:
        raise Problem(404, "not-found", NOT_FOUND)
    rows, nxt = await chat.list_messages(db, conversation_id, page.limit, page.after)
    return MessagePage(items=[message_out(m) for m in rows], next_cursor=encode_cursor(nxt) if nxt else None)


@router.post(
    "/{conversation_id}/messages",
    status_code=status.HTTP_201_CREATED,
    response_model=ExchangeOut,
    responses={422: {"description": "validation error or prompt-injection refusal (problem+json)"}},
)
async def post_message(
    conversation_id: UUID,
    body: MessageCreate,
    request: Request,
    user: ChatUser,
    db: TenantDB,
    lab: LabDep,
    provider: ProviderDep,
    screener: ScreenerDep,
    idempotency_key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", max_length=255, pattern=r"^[A-Za-z0-9._:-]{1,255}$",
               description="retry-safe POST: a retry with the same key returns the first result"),
    ] = None,
) -> Any:
    if len(body.content) > lab.limits.message_max_chars:
        raise Problem(422, "validation", f"content must be <= {lab.limits.message_max_chars} characters")
    if idempotency_key is not None and not IDEMPOTENCY_KEY_RE.match(idempotency_key):
        raise Problem(422, "validation", "invalid Idempotency-Key")
    if await chat.get_conversation(db, user.sub, conversation_id) is None:
        raise Problem(404, "not-found", NOT_FOUND)
    request_hash = hashlib.sha256(json.dumps(body.model_dump(), sort_keys=True).encode()).hexdigest()

    async def replay() -> Any | None:
        found = await chat.find_by_idempotency_key(db, conversation_id, user.sub, idempotency_key or "")
        if found is None:
            return None
        first, reply = found
        if first.request_hash != request_hash:
            raise Problem(422, "idempotency-key-reused", "this Idempotency-Key was used with a different body")
        if first.guard_decision == "block" or reply is None:
            return _blocked(first, replayed=True)
        out = ExchangeOut(message=message_out(first), reply=message_out(reply))
        return JSONResponse(out.model_dump(mode="json"), status_code=201, headers={"Idempotent-Replayed": "true"})

    if idempotency_key is not None and (prior := await replay()) is not None:
        return prior
    try:
        verdict = await screener(body.content)
    except GuardUnavailable:
        raise Problem(503, "upstream-unavailable", "the prompt-injection guard is unavailable") from None
    msg_id = await chat.insert_user_message(
        db, conversation_id, user.sub, body.content, verdict.decision, verdict.reasons, idempotency_key, request_hash
    )
    if msg_id is None:  # a concurrent retry with the same key committed first
        prior = await replay()
        if prior is None:
            raise Problem(409, "conflict", "a request with this Idempotency-Key is in progress")
        return prior
    msg = await chat.get_message(db, msg_id)
    if verdict.decision == "block":
        await audit.record(db, user.sub, "message.blocked", str(msg_id), {"reasons": verdict.reasons[:5]})
        return _blocked(msg, replayed=False)
    history = await chat.recent_history(db, conversation_id)
    try:
        completion = await provider.generate([ChatMessage(role=m.role, content=m.content) for m in history])
    except ProviderError:
        raise Problem(503, "upstream-unavailable", "no model provider could answer") from None
    reply = await chat.insert_reply(db, conversation_id, msg_id, completion.content, completion.provider)
    await audit.record(
        db, user.sub, "message.create", str(msg_id), {"conversation": str(conversation_id), "guard": verdict.decision}
    )
    return ExchangeOut(message=message_out(msg), reply=message_out(reply))
