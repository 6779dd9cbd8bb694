from __future__ import annotations

from app.ai.breaker import CircuitBreaker, State


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


async def test_opens_after_threshold_then_half_open_probe() -> None:
    clock = Clock()
    b = CircuitBreaker("t1", failure_threshold=2, reset_timeout_s=10, clock=clock)
    assert await b.allow()
    await b.record_failure()
    assert b.state is State.CLOSED
    await b.record_failure()
    assert b.state is State.OPEN and not await b.allow()
    clock.t = 10
    assert await b.allow()          # the one half-open probe
    assert not await b.allow()      # no second probe while it is in flight
    await b.record_failure()        # probe failed: open again
    assert b.state is State.OPEN
    clock.t = 20
    assert await b.allow()
    await b.record_success()
    assert b.state is State.CLOSED and await b.allow()


async def test_success_resets_consecutive_count() -> None:
    b = CircuitBreaker("t2", failure_threshold=2, reset_timeout_s=10)
    await b.record_failure()
    await b.record_success()
    await b.record_failure()
    assert b.state is State.CLOSED
