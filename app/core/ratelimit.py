"""Fixed-window rate limits in Redis, per user and per client address (lab.yml limits.rate_limits).

Why: caps brute force and resource exhaustion per identity and per source (OWASP API4:2023,
ASVS 4.0.3 V11.1.4). Fixed windows cost one INCR per check and are exact enough for per-minute limits.

Redis down => FAIL OPEN (the request proceeds, a warning is logged, and
`seclab_rate_limit_fail_open_total` counts it). Why: the edge's nginx `limit_req` still limits every
client, token budgets and auth still hold, and a cache outage should not turn into a full API outage;
`/readyz` reports Redis down so the operator sees it at once. Never a 500.

Client address: the TCP peer, or the right-most untrusted X-Forwarded-For entry when the peer is a
trusted proxy (SECLAB_TRUSTED_PROXIES). Why: anything else in X-Forwarded-For is client-controlled
and would let a client pick its own rate-limit bucket (OWASP API4:2023; ASVS 4.0.3 V11.1.4).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import ip_address

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.core.metrics import RATE_LIMIT_FAIL_OPEN

log = logging.getLogger("seclab.ratelimit")
WINDOW_S = 60


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: int
    count: int
    checked: bool  # False when Redis was unreachable (fail open)


def window_key(scope: str, identity: str, now: float, window_s: int = WINDOW_S) -> tuple[str, int]:
    """Key for the current window and the seconds until it ends. Identities are hashed: no raw
    addresses or subjects in Redis key names."""
    window = int(now // window_s)
    ident = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:32]
    remaining = max(1, math.ceil((window + 1) * window_s - now))
    return f"seclab:rl:{scope}:{ident}:{window}", remaining


def client_address(peer: str | None, forwarded_for: str | None, is_trusted: Callable[[str | None], bool]) -> str:
    if not is_trusted(peer) or not forwarded_for:
        return peer or "unknown"
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    # Walk from the right: the first hop that is not one of our proxies is the client.
    for hop in reversed(hops):
        try:
            ip_address(hop)
        except ValueError:
            return peer or "unknown"  # garbage in the header: fall back to the peer
        if not is_trusted(hop):
            return hop
    return hops[0] if hops else (peer or "unknown")


class RateLimiter:
    def __init__(self, redis: Redis, clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.clock = clock

    async def hit(self, scope: str, identity: str, limit: int) -> Decision:
        key, remaining = window_key(scope, identity, self.clock())
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, WINDOW_S + 5, nx=True)
                count, _ = await pipe.execute()
        except (RedisError, OSError) as exc:
            RATE_LIMIT_FAIL_OPEN.inc()
            log.warning("rate limit not checked, Redis unreachable", extra={"error.type": type(exc).__name__})
            return Decision(True, 0, 0, False)
        count = int(count)
        return Decision(count <= limit, remaining if count > limit else 0, count, True)
