"""A circuit breaker per model provider: closed -> open -> half-open -> closed.

Why: a provider that is down (outage, 5xx storm, rate-limited account) should be skipped at once
instead of costing every request its full timeout and retries; that both keeps latency bounded and
stops us from hammering a struggling upstream (OWASP LLM10:2025 unbounded consumption; Release It!,
"Circuit Breaker"). The breaker counts *provider calls* (after the provider's own retries), not
HTTP attempts, so one flaky request does not open it.

States: CLOSED lets calls through and counts consecutive failures; at `failure_threshold` it goes
OPEN for `reset_timeout_s`; then HALF_OPEN lets exactly one probe call through: success closes it,
failure opens it again. In-process state: each API/worker process learns on its own, which is enough
for a single-host lab (a shared breaker in Redis would add a dependency to the failure path).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from enum import IntEnum

from prometheus_client import Gauge

BREAKER_STATE = Gauge(
    "seclab_ai_breaker_state", "Circuit breaker state per provider (0 closed, 1 open, 2 half-open)", ["provider"]
)


class State(IntEnum):
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class CircuitBreaker:
    """Consecutive-failure breaker with a single half-open probe; clock injectable for tests."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 3,
        reset_timeout_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or reset_timeout_s <= 0:
            raise ValueError("failure_threshold >= 1 and reset_timeout_s > 0")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self._clock = clock
        self._state = State.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False
        self._lock = asyncio.Lock()
        BREAKER_STATE.labels(name).set(State.CLOSED)

    @property
    def state(self) -> State:
        if self._state is State.OPEN and self._clock() - self._opened_at >= self.reset_timeout_s:
            return State.HALF_OPEN
        return self._state

    def _set(self, state: State) -> None:
        self._state = state
        BREAKER_STATE.labels(self.name).set(int(state))

    async def allow(self) -> bool:
        """True if a call may go to the provider now (claims the half-open probe slot)."""
        async with self._lock:
            st = self.state
            if st is State.CLOSED:
                return True
            if st is State.HALF_OPEN and not self._probe_in_flight:
                self._set(State.HALF_OPEN)
                self._probe_in_flight = True
                return True
            return False

    async def record_success(self) -> None:
        async with self._lock:
            self._failures = 0
            self._probe_in_flight = False
            self._set(State.CLOSED)

    async def record_failure(self) -> None:
        async with self._lock:
            self._probe_in_flight = False
            self._failures += 1
            if self._state is State.HALF_OPEN or self._failures >= self.failure_threshold:
                self._opened_at = self._clock()
                self._set(State.OPEN)
