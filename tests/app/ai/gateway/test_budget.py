"""Token budgets against a real redis-server (private, port 16379)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.ai.budget import PROBLEM_TYPE, BudgetExhausted, BudgetUnavailable, TokenBudget
from app.ai.gateway import AllProvidersFailed, Gateway, ProviderSlot
from app.ai.output_checks import OutputChecker
from app.ai.providers.base import ChatMessage, ProviderError
from app.ai.providers.deterministic import DeterministicProvider


class Clock:
    t = 1_000_000 * 3600 + 10.0

    def __call__(self) -> float:
        return self.t


async def test_reserve_settle_and_user_limit(redis: Any) -> None:
    b = TokenBudget(redis, per_user_per_hour=100, per_tenant_per_hour=1000, clock=Clock())
    r = await b.reserve(tenant="acme", user="alice", amount=80)
    assert await b.usage(tenant="acme", user="alice") == (80, 80)
    await b.settle(r, 30)  # refund the unused part
    assert await b.usage(tenant="acme", user="alice") == (30, 30)
    await b.settle(r, 99)  # idempotent
    assert await b.usage(tenant="acme", user="alice") == (30, 30)
    with pytest.raises(BudgetExhausted) as ei:
        await b.reserve(tenant="acme", user="alice", amount=71)
    assert ei.value.scope == "user" and ei.value.status == 429 and ei.value.problem_type == PROBLEM_TYPE
    assert 0 < ei.value.retry_after_s <= 3600
    assert await b.usage(tenant="acme", user="alice") == (30, 30)  # a refusal reserves nothing
    await b.reserve(tenant="acme", user="carol", amount=70)  # another user is not affected


async def test_tenant_limit_across_users_and_other_tenant_unaffected(redis: Any) -> None:
    b = TokenBudget(redis, per_user_per_hour=100, per_tenant_per_hour=150, clock=Clock())
    await b.reserve(tenant="acme", user="alice", amount=100)
    with pytest.raises(BudgetExhausted) as ei:
        await b.reserve(tenant="acme", user="carol", amount=60)
    assert ei.value.scope == "tenant"
    await b.reserve(tenant="globex", user="bob", amount=100)


async def test_parallel_reservations_never_overshoot(redis: Any) -> None:
    b = TokenBudget(redis, per_user_per_hour=1000, per_tenant_per_hour=10_000, clock=Clock())

    async def one() -> bool:
        try:
            await b.reserve(tenant="acme", user="alice", amount=30)
            return True
        except BudgetExhausted:
            return False

    results = await asyncio.gather(*(one() for _ in range(60)))
    assert sum(results) == 33 and (await b.usage(tenant="acme", user="alice"))[0] == 990


async def test_new_window_starts_empty(redis: Any) -> None:
    clock = Clock()
    b = TokenBudget(redis, per_user_per_hour=50, per_tenant_per_hour=500, clock=clock)
    await b.reserve(tenant="acme", user="alice", amount=50)
    clock.t += 3600
    await b.reserve(tenant="acme", user="alice", amount=50)


async def test_gateway_refunds_failed_calls_and_charges_real_usage(redis: Any) -> None:
    class Down:
        name = "down"

        async def generate(self, messages: list[ChatMessage]) -> Any:
            raise ProviderError("down")

    b = TokenBudget(redis, per_user_per_hour=5000, per_tenant_per_hour=50000)
    canary = "SECLAB-CANARY-aaaaaaaaaaaaaaaa"
    kw: dict[str, Any] = {"checker": OutputChecker(canary=canary, system_prompt="sys " + canary),
                          "system_prompt": "sys " + canary, "max_output_tokens": 256, "budget": b}
    with pytest.raises(AllProvidersFailed):
        await Gateway([ProviderSlot(Down(), pseudonymize_pii=False)], **kw).complete(
            [ChatMessage(role="user", content="hi")], conversation_id="c", user="alice", tenant="acme")
    assert await b.usage(tenant="acme", user="alice") == (0, 0)
    r = await Gateway([ProviderSlot(DeterministicProvider(), pseudonymize_pii=False)], **kw).complete(
        [ChatMessage(role="user", content="hi")], conversation_id="c", user="alice", tenant="acme")
    assert await b.usage(tenant="acme", user="alice") == (r.tokens_in + r.tokens_out,) * 2


async def test_redis_down_fails_closed() -> None:
    import redis.asyncio as aioredis

    dead = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    with pytest.raises(BudgetUnavailable):
        await TokenBudget(dead, per_user_per_hour=1, per_tenant_per_hour=1).reserve(tenant="a", user="b", amount=1)
    await dead.aclose()
