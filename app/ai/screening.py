"""Adapter to the prompt-injection guard (`app.ai.guard.get_guard().evaluate(text)`).

Why an adapter: the route depends on one async function, the guard stays a pure, sync module
(runs in a worker thread so a slow model load cannot stall the event loop), and the verdict is
normalized into the API's `{"decision", "reasons"}` shape (OWASP LLM01:2025 prompt injection).
If the guard cannot be imported the adapter FAILS CLOSED (503 upstream-unavailable): chatting
without the guard would silently drop a layer of defence (fail securely, OWASP Top 10 2021 A04
insecure design; ASVS 4.0.3 V1.4.1 trusted enforcement points).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Literal

from pydantic import BaseModel

from app.core.metrics import GUARD_DECISIONS, GUARD_LATENCY

log = logging.getLogger("seclab.guard")


class Verdict(BaseModel):
    decision: Literal["allow", "flag", "block"]
    reasons: list[str]
    score: float = 0.0


class GuardUnavailable(Exception):
    pass


def _load_guard() -> Any:
    try:
        from app.ai.guard import get_guard
    except ImportError as exc:
        raise GuardUnavailable(f"app.ai.guard not importable: {exc}") from None
    return get_guard()


async def screen(text: str) -> Verdict:
    started = time.perf_counter()
    try:
        verdict = await asyncio.to_thread(lambda: _load_guard().evaluate(text))
    except GuardUnavailable:
        raise
    except Exception as exc:  # a crashing guard must not let the message through unscreened
        log.exception("guard failed")
        raise GuardUnavailable(type(exc).__name__) from None
    out = Verdict(
        decision=verdict.decision,
        reasons=[str(r)[:200] for r in list(verdict.reasons)[:20]],
        score=float(getattr(verdict, "score", 0.0)),
    )
    GUARD_LATENCY.observe(time.perf_counter() - started)
    GUARD_DECISIONS.labels(out.decision).inc()
    return out
