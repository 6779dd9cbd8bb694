"""One message and its answer: read it (`GET .../messages/{id}`) or follow it as Server-Sent Events.

Why events and not raw token streaming: every answer passes the output checks (canary, system-prompt
echo, secret-looking strings, PII the user did not send) on the whole text before anyone sees it, so
streaming the model's tokens as they come would leak exactly what those checks withhold (OWASP
LLM02:2025 sensitive information disclosure, LLM07:2025 system prompt leakage). The stream carries
the message's state changes and the checked answer, which spares clients the polling loop.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from app.api.deps import ChatUser, TenantDB, TenantTransactions, TenantTxs
from app.models.api import ExchangeOut, ResourceId
from app.services.messages import find_exchange, read_exchange

router = APIRouter(prefix="/conversations", tags=["chat"])

STREAM_MAX_S = 60.0
"""A stream ends after this long even if the message is still pending (event `timeout`; reconnect to
go on): an open stream holds an ASGI slot, never a DB connection (OWASP API4:2023)."""
HEARTBEAT_S = 10.0
"""A comment line this often keeps proxies (the edge's proxy_read_timeout) from closing a quiet stream."""
POLL_MAX_S = 1.0

SSE_HEADERS = {
    # (Cache-Control: no-store comes from the security-headers middleware, as on every API response.)
    # nginx honours this per response: events reach the client as they are written, not buffered.
    "X-Accel-Buffering": "no",
}


def _is_final(ex: ExchangeOut) -> bool:
    return ex.reply is not None or ex.message.status != "pending"


def sse_event(event: str, data: str, event_id: str | None = None) -> str:
    """One event in the text/event-stream format (WHATWG HTML §9.2); `data` is one JSON line."""
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {data}\n\n"


async def exchange_events(
    txs: TenantTransactions,
    conversation_id: UUID,
    first: ExchangeOut,
    *,
    max_s: float = STREAM_MAX_S,
    heartbeat_s: float = HEARTBEAT_S,
) -> AsyncIterator[str]:
    """`message` on every state change (the first one at once), then `done` when the message is
    answered, failed or blocked, or `timeout` after `max_s`. Polls with short transactions, backing
    off 50 ms -> 1 s, like `Prefer: wait`."""
    yield "retry: 2000\n\n"
    current = first
    seen = current.model_dump_json()
    yield sse_event("message", seen, str(current.message.id))
    start = last_write = time.monotonic()
    delay = 0.05
    while not _is_final(current):
        now = time.monotonic()
        if now - start >= max_s:
            yield sse_event("timeout", json.dumps({"status": current.message.status}))
            return
        if now - last_write >= heartbeat_s:
            yield ": keep-alive\n\n"
            last_write = now
        await asyncio.sleep(min(delay, max(0.0, max_s - (now - start))))
        delay = min(delay * 2, POLL_MAX_S)
        latest = await read_exchange(txs, conversation_id, current.message.id)
        if latest is None:  # deleted meanwhile (tenant purge): nothing more will come
            yield sse_event("done", json.dumps({"status": "gone"}))
            return
        current = latest
        dumped = current.model_dump_json()
        if dumped != seen:
            seen = dumped
            yield sse_event("message", dumped, str(current.message.id))
            last_write = time.monotonic()
    yield sse_event("done", json.dumps({"status": current.message.status}))


@router.get("/{conversation_id}/messages/{message_id}", response_model=ExchangeOut)
async def get_message(conversation_id: ResourceId, message_id: ResourceId, user: ChatUser, db: TenantDB) -> ExchangeOut:
    """A user message of the caller's conversation with its answer (null while pending)."""
    return await find_exchange(db, user.sub, conversation_id, message_id)


@router.get(
    "/{conversation_id}/messages/{message_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}},
                     "description": "`message` events (ExchangeOut JSON), then `done` or `timeout`"},
               404: {"description": "no such conversation or message (problem+json)"}},
)
async def message_events(
    conversation_id: ResourceId, message_id: ResourceId, user: ChatUser, txs: TenantTxs
) -> StreamingResponse:
    """Follow a message until it is answered: Server-Sent Events of its checked state, never raw tokens.
    An unknown id is a plain 404 problem, checked before the stream starts (not an empty stream)."""
    async with txs() as db:
        first = await find_exchange(db, user.sub, conversation_id, message_id)
    return StreamingResponse(
        exchange_events(txs, conversation_id, first), media_type="text/event-stream", headers=SSE_HEADERS
    )
