"""What the worker needs from the database: the contract `app.crud.worker` implements on the tenant logins.

Why a protocol: the worker must not know SQL or tenancy; every method runs in the tenant's own
transaction on a connection logged in as `tenant_x` (app/db/pools.py), so a worker bug cannot touch another tenant's rows
(ASVS 4.0.3 V4.1.3 least privilege). The idempotency of the whole pipeline rests on `save_reply`
being ONE atomic check-and-set: a redelivered or swept duplicate task may call the model again,
but only the first answer is ever stored (at-least-once delivery, exactly-once effect).
"""

from __future__ import annotations

from typing import Protocol
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from app.ai.gateway import GatewayResult
from app.ai.providers.base import ChatMessage


class PendingMessage(BaseModel):
    """A stored user message waiting for its answer, with the conversation history to send."""

    model_config = ConfigDict(frozen=True)

    tenant: str
    message_id: UUID
    conversation_id: UUID
    author_sub: str
    history: list[ChatMessage]  # oldest first, ends with this message


class ReplyStore(Protocol):
    async def load_pending(self, tenant: str, message_id: UUID) -> PendingMessage | None:
        """The message if its status is `pending` or `failed` (answerable); None if answered, blocked or absent."""
        ...

    async def save_reply(self, tenant: str, message_id: UUID, result: GatewayResult) -> bool:
        """Atomically: `UPDATE messages SET status='answered' WHERE id=$1 AND status IN ('pending','failed')
        RETURNING id`, and only if a row came back INSERT the assistant reply (provider, tokens, output
        decision) in the same transaction. True if this call stored the answer, False if it was already answered."""
        ...

    async def mark_failed(self, tenant: str, message_id: UUID, reason: str) -> None:
        """`status='failed'` (with a short reason, no message text) where status = 'pending'."""
        ...

    async def stale_pending(self, older_than_s: float, limit: int) -> list[tuple[str, UUID]]:
        """(tenant, message_id) of messages `pending` for longer than `older_than_s`, oldest first, all tenants."""
        ...
