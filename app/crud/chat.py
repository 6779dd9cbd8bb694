"""Chat CRUD. Every function takes the tenant transaction (`db`) from app/db/pools.py (`orm_transaction`).

Rows are also filtered by owner: the schema separates tenants, the owner filter separates users
inside a tenant (OWASP API1:2023 broken object level authorization).
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from uuid import UUID

from app.models.db import Conversation, Message


async def create_conversation(db: Any, owner: str, title: str) -> Conversation:
    return await Conversation.create(using_db=db, id=uuid.uuid4(), owner_sub=owner, title=title)


async def get_conversation(db: Any, owner: str, conversation_id: UUID) -> Conversation | None:
    return await Conversation.filter(id=conversation_id, owner_sub=owner).using_db(db).first()


async def list_conversations(
    db: Any, owner: str, limit: int, after_seq: int | None
) -> tuple[list[Conversation], int | None]:
    """Newest first; the cursor is the last seq seen."""
    qs = Conversation.filter(owner_sub=owner)
    if after_seq is not None:
        qs = qs.filter(seq__lt=after_seq)
    rows = await qs.order_by("-seq").limit(limit + 1).using_db(db)
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].seq if more and rows else None)


async def list_messages(
    db: Any, conversation_id: UUID, limit: int, after_seq: int | None
) -> tuple[list[Message], int | None]:
    """Oldest first (reading order)."""
    qs = Message.filter(conversation_id=conversation_id)
    if after_seq is not None:
        qs = qs.filter(seq__gt=after_seq)
    rows = await qs.order_by("seq").limit(limit + 1).using_db(db)
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].seq if more and rows else None)


async def find_by_idempotency_key(
    db: Any, conversation_id: UUID, author: str, key: str
) -> tuple[Message, Message | None] | None:
    msg = await Message.filter(
        conversation_id=conversation_id, author_sub=author, idempotency_key=key
    ).using_db(db).first()
    if msg is None:
        return None
    return msg, await get_reply(db, msg.id)


async def get_reply(db: Any, message_id: UUID) -> Message | None:
    return await Message.filter(reply_to=message_id, role="assistant").using_db(db).first()


async def insert_user_message(
    db: Any,
    conversation_id: UUID,
    author: str,
    content: str,
    decision: str,
    reasons: list[str],
    idempotency_key: str | None,
    request_hash: str | None,
) -> UUID | None:
    """Insert unless the idempotency key was used already (then None). ON CONFLICT waits for a
    concurrent insert of the same key to commit, so two racing retries store one message.

    Status: `blocked` for a blocked verdict (never answered), else `pending` for the worker."""
    new_id = uuid.uuid4()
    status = "blocked" if decision == "block" else "pending"
    # execute_query_dict uses fetch(): Tortoise's execute_query reads the OID field of "INSERT 0 1" as the count.
    rows = await db.execute_query_dict(
        "INSERT INTO messages (id, conversation_id, role, author_sub, content, guard_decision, guard_reasons,"
        " idempotency_key, request_hash, status) VALUES ($1, $2, 'user', $3, $4, $5, $6::jsonb, $7, $8, $9)"
        " ON CONFLICT ON CONSTRAINT messages_idempotency DO NOTHING RETURNING id",
        [new_id, conversation_id, author, content, decision, json.dumps(reasons), idempotency_key, request_hash,
         status],
    )
    return new_id if rows else None


async def get_message(db: Any, message_id: UUID) -> Message:
    return await Message.get(id=message_id, using_db=db)


async def get_user_message(db: Any, conversation_id: UUID, message_id: UUID) -> Message | None:
    """A user message of this conversation (the caller checked the conversation's owner); an id from
    another conversation gives None, so ids cannot be probed across conversations (OWASP API1:2023)."""
    return await Message.filter(id=message_id, conversation_id=conversation_id, role="user").using_db(db).first()


async def usage_by_user(db: Any) -> list[dict[str, Any]]:
    _, rows = await db.execute_query(
        "SELECT c.owner_sub AS user, count(DISTINCT c.id) AS conversations, count(m.id) AS messages"
        " FROM conversations c LEFT JOIN messages m ON m.conversation_id = c.id AND m.role = 'user'"
        " GROUP BY c.owner_sub ORDER BY c.owner_sub LIMIT 1000"
    )
    return [dict(r) for r in rows]
