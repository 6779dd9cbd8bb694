"""The one place Redis clients are built from the app settings: ACL user, password file, TLS.

Why one factory: the API (rate limits, budgets, pseudonyms), the worker (DLQ, sweeper), the DLQ depth
collector and `lab dlq` must all present the same credentials and verify the server the same way;
four hand-written copies drifted (string vs. ssl constant, password omitted vs. None). Callers choose
only their timeouts. `rediss://` verifies the server against the lab CA and presents the client
certificate (ASVS 4.0.3 V9.2.1); the password comes from a file, never the environment (V6.4.1).

With `SECLAB_REDIS_SENTINELS` set, the clients ask the sentinels which node is the primary (redis-py's
Sentinel support) instead of trusting a fixed address: after a failover every new connection goes to
the promoted replica, and a connection that finds itself on a demoted node (READONLY) is dropped and
re-resolved. A client authenticates to the sentinels as itself (same ACL user and password, with
discovery-only rights there) and over the same mutual TLS (docs/durability.md "Redis failover").
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urlsplit

import redis
import redis.asyncio as aioredis
import redis.asyncio.sentinel as aiosentinel
import redis.sentinel

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


def database(settings: Settings) -> int:
    """The database number of the settings' URL (`/0` or none: 0); Sentinel mode keeps using it."""
    path = urlsplit(settings.redis_url).path.strip("/")
    return int(path) if path.isdigit() else 0


def sentinel_options(settings: Settings, *, timeout: float, connect_timeout: float) -> dict[str, Any]:
    """Keyword arguments of each sentinel connection: the client's own ACL user and TLS, as to a data node."""
    opts = client_options(settings, timeout=timeout, connect_timeout=connect_timeout)
    if tls_options(settings) is not None:
        opts["ssl"] = True
    return opts


def node_options(settings: Settings, *, timeout: float, connect_timeout: float) -> dict[str, Any]:
    """Keyword arguments of the data-node connections of a Sentinel-managed pool (`ssl=True` picks
    redis-py's SentinelManagedSSLConnection)."""
    opts = sentinel_options(settings, timeout=timeout, connect_timeout=connect_timeout)
    opts["db"] = database(settings)
    return opts


def async_client(settings: Settings, *, timeout: float, connect_timeout: float, **extra: Any) -> aioredis.Redis:
    if sentinels := settings.redis_sentinel_addresses():
        sentinel = aiosentinel.Sentinel(
            sentinels, sentinel_kwargs=sentinel_options(settings, timeout=timeout, connect_timeout=connect_timeout)
        )
        return sentinel.master_for(
            settings.redis_master_name,
            **node_options(settings, timeout=timeout, connect_timeout=connect_timeout),
            **extra,
        )
    return aioredis.Redis.from_url(
        settings.redis_url, **client_options(settings, timeout=timeout, connect_timeout=connect_timeout), **extra
    )


def sync_client(settings: Settings, *, timeout: float, connect_timeout: float) -> redis.Redis:
    """A sync client, for callers the event loop cannot serve (Prometheus collectors are called synchronously)."""
    if sentinels := settings.redis_sentinel_addresses():
        sentinel = redis.sentinel.Sentinel(
            sentinels, sentinel_kwargs=sentinel_options(settings, timeout=timeout, connect_timeout=connect_timeout)
        )
        return sentinel.master_for(
            settings.redis_master_name, **node_options(settings, timeout=timeout, connect_timeout=connect_timeout)
        )
    return redis.Redis.from_url(
        settings.redis_url, **client_options(settings, timeout=timeout, connect_timeout=connect_timeout)
    )
