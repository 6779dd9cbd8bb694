"""The dead-letter stream `seclab:dlq`: tasks that exhausted their retries, kept for a person to replay.

Why a Redis STREAM: entries are ordered, carry their own ids and timestamps, survive a worker
restart (Redis persistence) and can be trimmed to a bound (MAXLEN, so a failure storm cannot fill
Redis: OWASP LLM10:2025 / API4:2023). Why no message text in it: the payload is ids only; the error
string passes through the PII pseudonymizer and is truncated, so the DLQ never becomes a second,
unprotected copy of user data (OWASP LLM02:2025; ASVS 4.0.3 V8.3.4 and V7.1.1 no sensitive data in logs).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Literal

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import BaseModel, Field

from app.ai.pii import Pseudonymizer

DLQ_KEY = "seclab:dlq"
DLQ_MAXLEN = 10000

Category = Literal["upstream", "validation", "database", "unknown"]


class DlqEntry(BaseModel):
    """One dead letter: which task, for which message, why, after how many attempts."""

    task: str
    tenant: str
    message_id: str
    category: Category
    attempts: int = Field(ge=0)
    error: str = Field(max_length=500)
    failed_at: float = Field(default_factory=time.time)


def scrub_error(exc: BaseException | str) -> str:
    """Error text without PII (placeholders instead) and bounded in size."""
    text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    return Pseudonymizer().pseudonymize(text)[:500]


def categorize(exc: BaseException) -> Category:
    """upstream: a provider; validation: bad data (retrying cannot help); database: PostgreSQL; else unknown."""
    from pydantic import ValidationError

    from app.ai.providers.base import ProviderError

    declared = getattr(exc, "dlq_category", None)  # e.g. app.crud.worker.DatabaseUnavailable wraps OSError
    if declared in ("upstream", "validation", "database", "unknown"):
        return declared  # type: ignore[no-any-return]
    if isinstance(exc, ProviderError):
        return "upstream"
    if isinstance(exc, (ValidationError, ValueError, TypeError, KeyError)):
        return "validation"
    if type(exc).__module__.split(".")[0] in ("asyncpg", "tortoise", "psycopg", "psycopg2"):
        return "database"
    return "unknown"


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


async def dlq_add(redis: Any, entry: DlqEntry, *, maxlen: int = DLQ_MAXLEN) -> str:
    fields = {k: str(v) for k, v in entry.model_dump().items()}
    return _s(await redis.xadd(DLQ_KEY, fields, maxlen=maxlen, approximate=True))


async def dlq_list(redis: Any, count: int = 100) -> list[tuple[str, DlqEntry]]:
    rows = await redis.xrange(DLQ_KEY, count=count)
    return [(_s(i), DlqEntry.model_validate({_s(k): _s(v) for k, v in f.items()})) for i, f in rows]


async def dlq_delete(redis: Any, *entry_ids: str) -> int:
    return int(await redis.xdel(DLQ_KEY, *entry_ids)) if entry_ids else 0


async def dlq_purge(redis: Any) -> int:
    """Drop every entry (XTRIM: a stream command, allowed by the app/worker ACLs; DEL is not needed)."""
    return int(await redis.xtrim(DLQ_KEY, maxlen=0, approximate=False))


async def dlq_depth(redis: Any) -> int:
    return int(await redis.xlen(DLQ_KEY))


class DlqDepthCollector(Collector):
    """`seclab_dlq_depth`, read from Redis at scrape time, so whichever process serves /metrics (the
    API) reports the true depth; the worker's own gauges would be invisible to Prometheus. Takes a
    *sync* redis client with a short socket timeout: scrapes are synchronous."""

    def __init__(self, sync_redis: Any) -> None:
        self._redis = sync_redis

    def use(self, sync_redis: Any) -> None:
        """Swap the client (a process registers one collector; a new app instance brings a new client)."""
        self._redis = sync_redis

    def collect(self) -> Iterator[GaugeMetricFamily]:
        g = GaugeMetricFamily("seclab_dlq_depth", "Entries in the dead-letter stream seclab:dlq")
        try:
            g.add_metric([], float(self._redis.xlen(DLQ_KEY)))
        except Exception:  # noqa: BLE001 - unknown, not zero
            g.add_metric([], float("nan"))  # unknown, not zero: an alert must not read "all good"
        yield g
