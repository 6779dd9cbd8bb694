"""The one place Redis clients are built from the app settings: ACL user, password file, TLS.

Why one factory: the API (rate limits, budgets, pseudonyms), the worker (DLQ, sweeper), the DLQ depth
collector and `lab dlq` must all present the same credentials and verify the server the same way;
four hand-written copies drifted (string vs. ssl constant, password omitted vs. None). Callers choose
only their timeouts. `rediss://` verifies the server against the lab CA and presents the client
certificate (ASVS 4.0.3 V9.2.1); the password comes from a file, never the environment (V6.4.1).
"""

from __future__ import annotations

import ssl
from typing import Any

import redis
import redis.asyncio as aioredis

from app.core.config import Settings


def tls_options(settings: Settings) -> dict[str, Any] | None:
    """ssl options for `rediss://`: verify the server against the lab CA, present the client certificate."""
    if not settings.redis_url.startswith("rediss://"):
        return None
    opts: dict[str, Any] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    if settings.redis_ca_file:
        opts["ssl_ca_certs"] = settings.redis_ca_file
    if settings.redis_cert_file:
        opts["ssl_certfile"] = settings.redis_cert_file
    if settings.redis_key_file:
        opts["ssl_keyfile"] = settings.redis_key_file
    return opts


def client_options(settings: Settings, *, timeout: float, connect_timeout: float) -> dict[str, Any]:
    """Keyword arguments of `Redis.from_url` for the settings' URL (both redis-py flavours take them)."""
    pw = settings.redis_password()
    opts: dict[str, Any] = {"username": settings.redis_user, "password": pw.get_secret_value() if pw else None,
                            "socket_timeout": timeout, "socket_connect_timeout": connect_timeout}
    opts.update(tls_options(settings) or {})
    return opts


def async_client(settings: Settings, *, timeout: float, connect_timeout: float, **extra: Any) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        settings.redis_url, **client_options(settings, timeout=timeout, connect_timeout=connect_timeout), **extra
    )


def sync_client(settings: Settings, *, timeout: float, connect_timeout: float) -> redis.Redis:
    """A sync client, for callers the event loop cannot serve (Prometheus collectors are called synchronously)."""
    return redis.Redis.from_url(
        settings.redis_url, **client_options(settings, timeout=timeout, connect_timeout=connect_timeout)
    )
