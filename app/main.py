"""The chat API: `uvicorn app.main:app` (factory `create_app()`).

Nothing is read at import time: settings and the lab definition load in the lifespan, so importing
the module (tests, tools) needs no provisioned host. Collaborators (HTTP client for the JWKS,
Redis, provider, guard) can be injected, which is how the tests route them to in-process fakes.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import httpx
from fastapi import FastAPI
from redis.asyncio import Redis
from tortoise.context import TortoiseContext, _current_context

from app.ai.budget import TokenBudget
from app.ai.screening import Verdict, screen
from app.api.main import api_router
from app.api.routes import health
from app.core import openapi, problems
from app.core.config import Settings, load_settings
from app.core.logging import configure_logging
from app.core.middleware import RequestContextMiddleware
from app.core.ratelimit import RateLimiter
from app.core.redis import async_client, sync_client
from app.core.security import JwksCache, TokenValidator
from app.db.connect import app_credentials
from app.db.pools import TenantPools
from app.worker.dlq import DlqDepthCollector
from labdef import LabDefinition

log = logging.getLogger("seclab.app")


def tortoise_config(settings: Settings) -> dict[str, Any]:
    return {
        "connections": {
            "default": {
                "engine": "tortoise.backends.asyncpg",
                "credentials": {
                    **app_credentials(settings),
                    "minsize": 0,
                    "maxsize": 2,
                    "server_settings": {"application_name": "seclab-app"},
                },
            }
        },
        "apps": {"chat": {"models": ["app.models.db"], "default_connection": "default"}},
        "use_tz": True,
        "timezone": "UTC",
    }


def redis_client(settings: Settings) -> Redis:
    """The API's client: short timeouts (a request must not hang on Redis), periodic health checks."""
    return async_client(settings, timeout=1.0, connect_timeout=1.0, health_check_interval=30)


def sync_redis_client(settings: Settings) -> Any:
    """A *sync* client for the DLQ depth collector (Prometheus scrapes call collectors synchronously)."""
    return sync_client(settings, timeout=0.5, connect_timeout=0.5)


_dlq_collector: DlqDepthCollector | None = None
_dlq_clients: list[Any] = []


def register_dlq_collector(client: Any) -> DlqDepthCollector:
    """`seclab_dlq_depth` on the API's /metrics. Registered once per process (the default registry
    refuses a second collector with the same metric name); a later app only swaps the client in, and
    `release_dlq_client` swaps the previous one back when that app stops (tests run several apps)."""
    global _dlq_collector
    _dlq_clients.append(client)
    if _dlq_collector is None:
        from prometheus_client import REGISTRY

        _dlq_collector = DlqDepthCollector(client)
        REGISTRY.register(_dlq_collector)
    else:
        _dlq_collector.use(client)
    return _dlq_collector


def release_dlq_client(client: Any) -> None:
    if client in _dlq_clients:
        _dlq_clients.remove(client)
    if _dlq_collector is not None and _dlq_clients:
        _dlq_collector.use(_dlq_clients[-1])


def celery_enqueuer(settings: Settings) -> Callable[[str, UUID], Awaitable[bool]]:
    """`app.worker.tasks.enqueue_reply` through a Celery client built from the API's own settings (its
    Redis ACL user `seclab_app`, which may publish tasks but not consume them). Imported here, not at
    module import: importing the worker module reads its settings."""
    from app.worker.celery_app import make_celery
    from app.worker.tasks import enqueue_reply

    client = make_celery(settings)

    async def enqueue(tenant: str, message_id: UUID) -> bool:
        return await enqueue_reply(tenant, message_id, celery=client)

    return enqueue


def create_app(
    settings: Settings | None = None,
    lab: LabDefinition | None = None,
    http_client: httpx.AsyncClient | None = None,
    redis: Redis | None = None,
    screener: Callable[[str], Awaitable[Verdict]] | None = None,
    enqueuer: Callable[[str, UUID], Awaitable[bool]] | None = None,
) -> FastAPI:
    """`enqueuer(tenant, message_id) -> bool` publishes the worker's task (default: Celery over the
    settings' Redis); tests inject an in-process one."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        s = settings or load_settings()
        configure_logging(s.log_level)
        the_lab = lab or s.load_lab()
        app.state.settings = s
        app.state.lab = the_lab
        own_http = http_client is None
        client = http_client or httpx.AsyncClient(
            follow_redirects=False, verify=ssl.create_default_context(cafile=s.oidc_ca_file) if s.oidc_ca_file else True
        )
        own_redis = redis is None
        app.state.redis = redis or redis_client(s)
        app.state.rate_limiter = RateLimiter(app.state.redis)
        app.state.token_validator = TokenValidator(
            JwksCache(client, s.jwks_url, s.oidc_jwks_min_refresh_s), s.oidc_issuer, s.oidc_audience, s.oidc_leeway_s
        )
        app.state.screener = screener or screen
        app.state.budget = TokenBudget(
            app.state.redis, per_user_per_hour=the_lab.ai.token_budget_per_user_per_hour,
            per_tenant_per_hour=the_lab.ai.token_budget_per_tenant_per_hour,
        )
        app.state.enqueue_reply = enqueuer or celery_enqueuer(s)
        dlq_redis = sync_redis_client(s)
        register_dlq_collector(dlq_redis)
        orm = TortoiseContext()
        token = _current_context.set(orm)  # init needs it current; requests set it per task (tenancy.py)
        try:
            await orm.init(config=tortoise_config(s))  # connects lazily: the app starts even if PG is down
        finally:
            _current_context.reset(token)
        app.state.orm = orm
        # Tenant data only through the tenant's own login (app/db/pools.py); the "default" connection
        # above is the catalog login seclab_app, which reaches no tenant schema (readiness only).
        app.state.tenant_pools = TenantPools(s, application_name="seclab-app")
        log.info("seclab api started", extra={"event.action": "startup"})
        try:
            yield
        finally:
            await app.state.tenant_pools.close()
            await orm.close_connections()
            release_dlq_client(dlq_redis)
            dlq_redis.close()
            if own_redis:
                await app.state.redis.aclose()
            if own_http:
                await client.aclose()

    app = FastAPI(
        title="seclab chat API",
        version="1.0.0",
        lifespan=lifespan,
        description="Multi-tenant LLM chat API of the seclab security lab. Errors are RFC 9457 problem+json.",
    )
    app.add_middleware(
        RequestContextMiddleware,
        body_max_bytes=lambda: app.state.lab.limits.body_max_bytes if hasattr(app.state, "lab") else 65536,
    )
    problems.install(app)
    openapi.install(app)
    app.include_router(health.router)
    app.include_router(api_router)
    return app


app = create_app()
