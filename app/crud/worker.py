"""The worker's PostgreSQL `ReplyStore` (contract in app/worker/store.py), on the tenant logins.

One data-access path with the API: every method runs in ONE transaction of `TenantPools.transaction`
(app/db/pools.py), a connection logged in AS `tenant_<t>`, exactly like an API request, so a worker bug
cannot read or write another tenant's rows (OWASP API1:2023; ASVS 4.0.3 V4.1.3 least privilege).

Why raw SQL on the asyncpg connection here and Tortoise models in the API (the paragraph issue 12
step 6 asks for): the worker needs five statements whose exact form IS the idempotency contract
(the check-and-set below); spelled out in SQL they are reviewable as such, while the ORM would hide
the `RETURNING` and the row lock. Both sides get their connection, and so their tenant, from the
same pools; only the query layer above differs.

`save_reply` is the idempotency of the whole pipeline: one check-and-set
`UPDATE … SET status='answered' WHERE id=$1 AND status IN ('pending','failed') RETURNING` and the
reply INSERT in the same transaction (a concurrent duplicate blocks on the row lock, then finds the
status changed and stores nothing); the unique index `messages_one_reply` (0002) is the last guard.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from uuid import UUID, uuid4

import asyncpg

from app.ai.gateway import GatewayResult
from app.ai.providers.base import ChatMessage
from app.core.config import Settings
from app.db.audit import canonical_detail
from app.db.pools import DatabaseUnavailable, TenantPools, UnknownTenant
from app.db.tenancy import TenantNameError
from app.worker.store import PendingMessage

log = logging.getLogger("seclab.worker.store")

HISTORY_LEN = 20
WORKER_ACTOR = "seclab-worker"


__all__ = ["DatabaseUnavailable", "PgReplyStore", "make_reply_store"]


class PgReplyStore:
    """`ReplyStore` over the tenant pools.

    `tenants`: the tenants the sweeper visits; default every tenant with a login role
    (`TenantPools.known_tenants`), not only those of lab.yml."""

    def __init__(self, pools: TenantPools, tenants: Callable[[], Awaitable[list[str]]] | None = None, *,
                 history_len: int = HISTORY_LEN) -> None:
        self._pools = pools
        self._tenants = tenants or self.known_tenants
        self._history_len = history_len

    async def close(self) -> None:
        await self._pools.close()

    async def known_tenants(self) -> list[str]:
        return await self._pools.known_tenants()

    def _tx(self, tenant: str) -> AbstractAsyncContextManager[asyncpg.Connection]:
        """TenantNameError (ValueError): validation, not retried; DatabaseUnavailable: retried."""
        return self._pools.transaction(tenant)

    async def load_pending(self, tenant: str, message_id: UUID) -> PendingMessage | None:
        async with self._tx(tenant) as conn:
            msg = await conn.fetchrow(
                "SELECT id, conversation_id, author_sub, seq FROM messages"
                " WHERE id = $1 AND role = 'user' AND status IN ('pending', 'failed')",
                message_id,
            )
            if msg is None:
                return None
            # Context for the model: answered exchanges before this message and the message itself.
            # Blocked prompts are never sent to a model (LLM01:2025), not even as history; other
            # unanswered messages are left out so the context stays question/answer pairs.
            rows = await conn.fetch(
                "SELECT role, content FROM ("
                "  SELECT seq, role, content FROM messages"
                "  WHERE conversation_id = $1 AND seq <= $2"
                "    AND (role = 'assistant' OR status = 'answered' OR id = $3)"
                "  ORDER BY seq DESC LIMIT $4) h ORDER BY seq",
                msg["conversation_id"], msg["seq"], message_id, self._history_len,
            )
        return PendingMessage(
            tenant=tenant, message_id=message_id, conversation_id=msg["conversation_id"],
            author_sub=msg["author_sub"],
            history=[ChatMessage(role=r["role"], content=r["content"]) for r in rows],
        )

    async def save_reply(self, tenant: str, message_id: UUID, result: GatewayResult) -> bool:
        async with self._tx(tenant) as conn:
            row = await conn.fetchrow(
                "UPDATE messages SET status = 'answered', status_reason = NULL"
                " WHERE id = $1 AND role = 'user' AND status IN ('pending', 'failed') RETURNING conversation_id",
                message_id,
            )
            if row is None:
                return False  # answered by an earlier delivery (or blocked/gone): store nothing
            reply_id = uuid4()
            # The text is stored as the gateway returned it, as plain text: nothing here makes it HTML
            # (LLM05:2025; clients escape at the point of use, ASVS 4.0.3 V5.3.1).
            await conn.execute(
                "INSERT INTO messages (id, conversation_id, role, author_sub, content, reply_to, provider,"
                " output_decision, tokens_in, tokens_out)"
                " VALUES ($1, $2, 'assistant', 'assistant', $3, $4, $5, $6, $7, $8)",
                reply_id, row["conversation_id"], result.text, message_id, result.provider,
                result.output_decision, result.tokens_in, result.tokens_out,
            )
            if result.output_decision != "allow":  # a withheld/redacted answer is a security event (LLM07/LLM02)
                await conn.execute(
                    "INSERT INTO audit_log (actor, action, target, detail) VALUES ($1, $2, $3, $4)",
                    WORKER_ACTOR, f"reply.{result.output_decision}", str(message_id),
                    canonical_detail({"provider": result.provider, "reasons": result.output_reasons[:5]}),
                )
        return True

    async def mark_failed(self, tenant: str, message_id: UUID, reason: str) -> None:
        async with self._tx(tenant) as conn:
            await conn.execute(
                "UPDATE messages SET status = 'failed', status_reason = $2 WHERE id = $1 AND status = 'pending'",
                message_id, reason[:64],
            )

    async def stale_pending(self, older_than_s: float, limit: int) -> list[tuple[str, UUID]]:
        """Across every tenant of `tenants`; a tenant that cannot be reached is skipped (logged)."""
        out: list[tuple[str, UUID]] = []
        for tenant in await self._tenants():
            if len(out) >= limit:
                break
            try:
                async with self._tx(tenant) as conn:
                    rows = await conn.fetch(
                        "SELECT id FROM messages WHERE status = 'pending'"
                        " AND created_at < now() - make_interval(secs => $1) ORDER BY created_at LIMIT $2",
                        float(older_than_s), limit - len(out),
                    )
            except (TenantNameError, UnknownTenant, asyncpg.PostgresError) as exc:  # e.g. a tenant just removed
                log.warning("sweeper skipped a tenant", extra={"tenant": tenant, "error": type(exc).__name__})
                continue
            out += [(tenant, r["id"]) for r in rows]
        return out


async def make_reply_store(settings: Settings) -> PgReplyStore:
    """The production store: the sweeper visits every tenant the database knows, lab.yml's and later ones.

    Per worker process (its own event loop): at most `db_tenant_pool_max` connections per tenant."""
    return PgReplyStore(TenantPools(settings, application_name="seclab-worker"))
