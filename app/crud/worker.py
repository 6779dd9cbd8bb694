"""The worker's PostgreSQL `ReplyStore` (contract in app/worker/store.py), under the tenant roles.

Why raw asyncpg here and Tortoise in the API: the worker needs four statements and a pool that
belongs to its own event loop (one per worker process, created lazily after the prefork); the SQL is
the contract, so it is written out. Every method runs in ONE transaction that starts with
`SET LOCAL ROLE tenant_<t>; SET LOCAL search_path TO tenant_<t>`, exactly like an API request, so a
worker bug cannot read or write another tenant's rows (OWASP API1:2023; ASVS 4.0.3 V4.1.3 least
privilege). The login role is the app's NOINHERIT `seclab_app`.

`save_reply` is the idempotency of the whole pipeline: one check-and-set
`UPDATE … SET status='answered' WHERE id=$1 AND status IN ('pending','failed') RETURNING` and the
reply INSERT in the same transaction (a concurrent duplicate blocks on the row lock, then finds the
status changed and stores nothing); the unique index `messages_one_reply` (0002) is the last guard.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from app.ai.gateway import GatewayResult
from app.ai.providers.base import ChatMessage
from app.core.config import Settings
from app.db.audit import canonical_detail
from app.db.connect import app_credentials
from app.db.tenancy import TenantNameError, quote_ident, tenant_ident
from app.worker.store import PendingMessage

log = logging.getLogger("seclab.worker.store")

HISTORY_LEN = 20
WORKER_ACTOR = "seclab-worker"


class DatabaseUnavailable(Exception):
    """PostgreSQL could not be reached (refused, reset, timeout): transient, so the task is retried.

    `dlq_category` tells `app.worker.dlq.categorize` what this is: a bare OSError would otherwise be
    `unknown` and dead-lettered at once, although the database is just restarting."""

    dlq_category = "database"


# The tenant roles the login role may SET ROLE to: exactly the tenants this store can serve. Written
# by `ensure_tenant` in the same transaction as the registry row (lab.tenants) and removed with it by
# `drop_tenant`, so tenants created later (admin API, `python -m app.db.admin create-tenant`) are
# included. Read from pg_catalog: the registry's schema `lab` (with the lab audit log) stays owner-only
# (OWASP ASVS 4.0.3 V4.1.3 least privilege).
TENANT_ROLES_SQL = (
    "SELECT substr(r.rolname, 8) AS name FROM pg_auth_members m"
    " JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member"
    " WHERE u.rolname = current_user AND r.rolname ~ '^tenant_[a-z][a-z0-9_]{1,30}$'"
    " ORDER BY 1"
)


class PgReplyStore:
    """`ReplyStore` over an asyncpg pool.

    `tenants`: the tenants the sweeper visits; default every tenant known to the database (see
    `TENANT_ROLES_SQL`), not only those of lab.yml."""

    def __init__(self, pool: asyncpg.Pool, tenants: Callable[[], Awaitable[list[str]]] | None = None, *,
                 history_len: int = HISTORY_LEN) -> None:
        self._pool = pool
        self._tenants = tenants or self.known_tenants
        self._history_len = history_len

    async def close(self) -> None:
        await self._pool.close()

    async def known_tenants(self) -> list[str]:
        """Every tenant whose role the login role is a member of, sorted."""
        try:
            async with self._pool.acquire() as conn:
                rows = await conn.fetch(TENANT_ROLES_SQL)
        except (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
                asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError) as exc:
            raise DatabaseUnavailable(type(exc).__name__) from None
        return [r["name"] for r in rows]

    @asynccontextmanager
    async def _tx(self, tenant: str) -> AsyncIterator[asyncpg.Connection]:
        q = quote_ident(tenant_ident(tenant))  # TenantNameError (ValueError): validation, not retried
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                # SET LOCAL ends with the transaction: a pooled connection never keeps a tenant's role.
                await conn.execute(f"SET LOCAL ROLE {q}; SET LOCAL search_path TO {q}")
                yield conn
        except (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
                asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError) as exc:
            raise DatabaseUnavailable(type(exc).__name__) from None

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
            except (TenantNameError, asyncpg.PostgresError) as exc:  # e.g. a tenant not provisioned yet
                log.warning("sweeper skipped a tenant", extra={"tenant": tenant, "error": type(exc).__name__})
                continue
            out += [(tenant, r["id"]) for r in rows]
        return out


async def create_pool(settings: Settings, *, max_size: int = 4) -> asyncpg.Pool:
    """min_size=0: the worker starts (and keeps consuming) while PostgreSQL is down; tasks retry."""
    creds: dict[str, Any] = app_credentials(settings)
    return await asyncpg.create_pool(
        **creds, min_size=0, max_size=max_size, timeout=5, command_timeout=30,
        server_settings={"application_name": "seclab-worker"},
    )


async def make_reply_store(settings: Settings) -> PgReplyStore:
    """The production store: the sweeper visits every tenant the database knows, lab.yml's and later ones."""
    return PgReplyStore(await create_pool(settings))
