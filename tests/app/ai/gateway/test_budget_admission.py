"""`TokenBudget.check`: the API's admission check (no reservation), against the private Redis."""

from __future__ import annotations

from typing import Any

import pytest

from app.ai.budget import BudgetExhausted, BudgetUnavailable, TokenBudget


async def test_check_refuses_what_would_not_fit_and_reserves_nothing(redis: Any) -> None:
    b = TokenBudget(redis, per_user_per_hour=100, per_tenant_per_hour=150, clock=lambda: 7200.0)
    await b.check(tenant="acme", user="alice", amount=100)
    assert await b.usage(tenant="acme", user="alice") == (0, 0)  # a check is not a reservation
    await b.reserve(tenant="acme", user="alice", amount=60)
    with pytest.raises(BudgetExhausted) as e:
        await b.check(tenant="acme", user="alice", amount=41)
    assert e.value.scope == "user" and e.value.retry_after_s == 3601
    await b.reserve(tenant="acme", user="bob", amount=80)
    with pytest.raises(BudgetExhausted) as e:
        await b.check(tenant="acme", user="carol", amount=11)
    assert e.value.scope == "tenant"
    await b.check(tenant="acme", user="carol", amount=10)


async def test_check_says_unavailable_when_redis_is_down() -> None:
    import redis.asyncio as aioredis

    r = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        with pytest.raises(BudgetUnavailable):
            await TokenBudget(r, per_user_per_hour=1, per_tenant_per_hour=1).check(tenant="a", user="u", amount=1)
    finally:
        await r.aclose()
