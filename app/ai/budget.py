"""Token budgets per user and per tenant per hour, in Redis: reserve before the call, settle after.

Why: a model call costs money (OpenAI) or scarce CPU (llama.cpp); without a per-principal ceiling one
user or one tenant can exhaust the service for everyone (OWASP LLM10:2025 unbounded consumption;
OWASP API4:2023 unrestricted resource consumption; ASVS 4.0.3 V11.1.4 anti-automation limits).

How: before the call, one Lua script atomically checks *both* counters (user and tenant) and adds
the worst-case cost (prompt estimate + max_output_tokens) to both, or adds nothing and says which
limit is exhausted: no race between check and increment, so parallel requests cannot overshoot.
After the call `settle` replaces the reservation with the real usage (refunds unused tokens; a
failed call refunds everything). Windows are fixed clock hours (`...:<epoch hour>`), keys expire
with the window. If Redis cannot be reached the check FAILS CLOSED (`BudgetUnavailable`): an unmetered
model call is exactly what the budget exists to prevent (fail securely, ASVS 4.0.3 V1.4.1).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

from prometheus_client import Counter
from pydantic import BaseModel, Field

BUDGET_EXHAUSTED = Counter("seclab_budget_exhausted_total", "Requests refused: token budget exhausted", ["tenant"])

PROBLEM_TYPE = "urn:seclab:problem:budget-exhausted"
WINDOW_S = 3600

# KEYS: user, tenant. ARGV: amount, user_limit, tenant_limit, ttl.
# Returns {1, user_used, tenant_used} or {0, scope(1 user | 2 tenant), used}.
_RESERVE = """
local amount = tonumber(ARGV[1])
local u = tonumber(redis.call('GET', KEYS[1]) or '0')
local t = tonumber(redis.call('GET', KEYS[2]) or '0')
if u + amount > tonumber(ARGV[2]) then return {0, 1, u} end
if t + amount > tonumber(ARGV[3]) then return {0, 2, t} end
u = redis.call('INCRBY', KEYS[1], amount)
t = redis.call('INCRBY', KEYS[2], amount)
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return {1, u, t}
"""

# KEYS: user, tenant. ARGV: delta (actual - reserved, may be negative), ttl. Never below zero.
_SETTLE = """
for i = 1, 2 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    local v = redis.call('INCRBY', KEYS[i], ARGV[1])
    if v < 0 then redis.call('SET', KEYS[i], 0, 'KEEPTTL') end
  elseif tonumber(ARGV[1]) > 0 then
    redis.call('SET', KEYS[i], ARGV[1], 'EX', ARGV[2])
  end
end
return 1
"""


class BudgetExhausted(Exception):
    """429 `urn:seclab:problem:budget-exhausted`; `retry_after_s` until the window turns."""

    problem_type = PROBLEM_TYPE
    status = 429

    def __init__(self, scope: Literal["user", "tenant"], tenant: str, limit: int, retry_after_s: int) -> None:
        super().__init__(f"{scope} token budget of {limit} per hour exhausted")
        self.scope = scope
        self.tenant = tenant
        self.limit = limit
        self.retry_after_s = retry_after_s


class BudgetUnavailable(Exception):
    """Redis could not be asked: map to 503 upstream-unavailable (fail closed)."""


class Reservation(BaseModel):
    """What `reserve` added; `settle` needs it to adjust exactly these keys (same window)."""

    user_key: str
    tenant_key: str
    reserved: int = Field(ge=0)
    settled: bool = False


def estimate_tokens(texts: list[str]) -> int:
    """Cheap upper-ish estimate before the call (about 4 characters per token, plus per-message overhead)."""
    return sum(len(t) // 3 + 4 for t in texts) + 3


class TokenBudget:
    """Per-user and per-tenant hourly token budgets (limits from lab.yml `ai.token_budget_*`)."""

    def __init__(
        self,
        redis: Any,
        *,
        per_user_per_hour: int,
        per_tenant_per_hour: int,
        prefix: str = "seclab:budget:",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self.per_user = per_user_per_hour
        self.per_tenant = per_tenant_per_hour
        self._prefix = prefix
        self._clock = clock
        self._reserve = redis.register_script(_RESERVE)
        self._settle = redis.register_script(_SETTLE)

    def _keys(self, tenant: str, user: str) -> tuple[str, str, int]:
        now = self._clock()
        hour = int(now // WINDOW_S)
        retry = int((hour + 1) * WINDOW_S - now) + 1
        # tenant and user names are validated identifiers (labdef NAME_RE) or opaque subs: no ':' games
        return f"{self._prefix}{tenant}:u:{user}:{hour}", f"{self._prefix}{tenant}:t:{hour}", retry

    async def reserve(self, *, tenant: str, user: str, amount: int) -> Reservation:
        """Reserve `amount` tokens on both budgets or raise BudgetExhausted (nothing reserved then)."""
        user_key, tenant_key, retry = self._keys(tenant, user)
        amount = max(0, int(amount))
        try:
            res = await self._reserve(keys=[user_key, tenant_key],
                                      args=[amount, self.per_user, self.per_tenant, WINDOW_S + 60])
        except Exception as exc:  # noqa: BLE001 - redis.exceptions.* and OSError: fail closed
            raise BudgetUnavailable(type(exc).__name__) from None
        if int(res[0]) != 1:
            scope: Literal["user", "tenant"] = "user" if int(res[1]) == 1 else "tenant"
            BUDGET_EXHAUSTED.labels(tenant).inc()
            raise BudgetExhausted(scope, tenant, self.per_user if scope == "user" else self.per_tenant, retry)
        return Reservation(user_key=user_key, tenant_key=tenant_key, reserved=amount)

    async def check(self, *, tenant: str, user: str, amount: int) -> None:
        """Admission check without reserving: raise BudgetExhausted if `amount` more would not fit now.

        The API calls this when it accepts a message, so a client whose budget is spent gets its 429
        synchronously instead of a message that fails later. The binding, atomic reservation happens
        in the worker (`Gateway.complete` -> `reserve`): one reservation point, so nothing is counted
        twice and no reservation has to survive the queue (sweeper, DLQ replay, a new clock hour).
        Raises BudgetUnavailable if Redis cannot be asked (the caller decides; the worker fails closed).
        """
        user_key, tenant_key, retry = self._keys(tenant, user)
        try:
            u, t = await self._redis.mget(user_key, tenant_key)
        except Exception as exc:  # noqa: BLE001 - redis.exceptions.* and OSError
            raise BudgetUnavailable(type(exc).__name__) from None
        amount = max(0, int(amount))
        for scope, used, limit in (("user", int(u or 0), self.per_user), ("tenant", int(t or 0), self.per_tenant)):
            if used + amount > limit:
                BUDGET_EXHAUSTED.labels(tenant).inc()
                raise BudgetExhausted(scope, tenant, limit, retry)  # type: ignore[arg-type]

    async def settle(self, reservation: Reservation, actual: int) -> None:
        """Replace the reservation by the real usage (0 for a failed call). Idempotent per reservation."""
        if reservation.settled:
            return
        delta = max(0, int(actual)) - reservation.reserved
        reservation.settled = True
        if delta:
            await self._settle(keys=[reservation.user_key, reservation.tenant_key], args=[delta, WINDOW_S + 60])

    async def usage(self, *, tenant: str, user: str) -> tuple[int, int]:
        """(user tokens, tenant tokens) used in the current window."""
        user_key, tenant_key, _ = self._keys(tenant, user)
        u, t = await self._redis.mget(user_key, tenant_key)
        return int(u or 0), int(t or 0)
