"""Test runtime of the worker (SECLAB_WORKER_RUNTIME=tests.app.ai.gateway.worker_runtime:build).

A STAND-IN for PostgreSQL: the ReplyStore contract implemented on the private test Redis (16379),
with the same atomic check-and-set `save_reply` the real store must do, and a provider that fails
as often as the test says (a counter in Redis, so the test process controls the worker process).
"""

from __future__ import annotations

import os
import time
from typing import Any
from uuid import UUID

import redis.asyncio as aioredis

from app.ai.breaker import CircuitBreaker
from app.ai.gateway import Gateway, GatewayResult, ProviderSlot
from app.ai.output_checks import OutputChecker
from app.ai.providers.base import ChatMessage, Completion, ProviderError
from app.worker.runtime import Runtime
from app.worker.store import PendingMessage

CANARY = "SECLAB-CANARY-test0123456789ab"
FAIL_KEY = "test:fail_left"
CALLS_KEY = "test:provider_calls"

# CAS: answer only a pending/failed message; count stored answers to prove "exactly once".
_SAVE = """
local s = redis.call('HGET', KEYS[1], 'status')
if s ~= 'pending' and s ~= 'failed' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'answered', 'reply', ARGV[1], 'provider', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'answers', 1)
return 1
"""


def msg_key(tenant: str, mid: UUID | str) -> str:
    return f"test:msg:{tenant}:{mid}"


async def add_pending(r: Any, tenant: str, mid: UUID, content: str, age_s: float = 0) -> None:
    await r.hset(msg_key(tenant, mid), mapping={
        "status": "pending", "content": content, "conversation_id": str(mid), "author": "alice",
        "created_at": time.time() - age_s, "answers": 0})


class RedisReplyStore:
    def __init__(self, r: Any) -> None:
        self.r = r
        self._save = r.register_script(_SAVE)

    async def load_pending(self, tenant: str, message_id: UUID) -> PendingMessage | None:
        h = {k.decode(): v.decode() for k, v in (await self.r.hgetall(msg_key(tenant, message_id))).items()}
        if h.get("status") not in ("pending", "failed"):
            return None
        return PendingMessage(tenant=tenant, message_id=message_id, conversation_id=UUID(h["conversation_id"]),
                              author_sub=h["author"], history=[ChatMessage(role="user", content=h["content"])])

    async def save_reply(self, tenant: str, message_id: UUID, result: GatewayResult) -> bool:
        return bool(await self._save(keys=[msg_key(tenant, message_id)], args=[result.text, result.provider]))

    async def mark_failed(self, tenant: str, message_id: UUID, reason: str) -> None:
        k = msg_key(tenant, message_id)
        if (await self.r.hget(k, "status")) == b"pending":
            await self.r.hset(k, mapping={"status": "failed", "reason": reason})

    async def stale_pending(self, older_than_s: float, limit: int) -> list[tuple[str, UUID]]:
        out = []
        for k in await self.r.keys("test:msg:*"):
            h = await self.r.hgetall(k)
            if h[b"status"] == b"pending" and float(h[b"created_at"]) < time.time() - older_than_s:
                _, _, tenant, mid = k.decode().split(":")
                out.append((tenant, UUID(mid)))
        return out[:limit]


class FlakyProvider:
    """Fails while the Redis counter FAIL_KEY is positive (DECR per call), then answers."""

    name = "flaky"

    def __init__(self, r: Any) -> None:
        self.r = r

    async def generate(self, messages: list[ChatMessage]) -> Completion:
        await self.r.incr(CALLS_KEY)
        if int(await self.r.decr(FAIL_KEY)) >= 0:
            raise ProviderError("flaky: HTTP 503 for alice@acme.example")  # PII in an error: must be scrubbed
        return Completion(content="fine answer", provider=self.name, model="flaky-1", prompt_tokens=3,
                          completion_tokens=2)


async def build() -> Runtime:
    r = aioredis.Redis.from_url(os.environ["SECLAB_REDIS_URL"])
    system = f"test system prompt {CANARY}"
    gw = Gateway([ProviderSlot(FlakyProvider(r), pseudonymize_pii=False,
                               breaker=CircuitBreaker("flaky", failure_threshold=1000, reset_timeout_s=1))],
                 checker=OutputChecker(canary=CANARY, system_prompt=system), system_prompt=system,
                 max_output_tokens=32)
    return Runtime(gateway=gw, store=RedisReplyStore(r), redis=r)
