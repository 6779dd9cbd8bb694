"""Rate limits against the real Redis, and readiness/fail-open with Redis unreachable."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.core.config import Settings
from app.main import create_app
from labdef import LabDefinition, RateLimits
from tests.app.conftest import auth, stand_in_screener
from tests.conftest import FakeIssuer

pytestmark = pytest.mark.integration  # live: the lab's PostgreSQL and Redis


def with_limits(lab: LabDefinition, per_user: int, per_address: int) -> LabDefinition:
    rl = RateLimits(per_user_per_minute=per_user, per_address_per_minute=per_address)
    return lab.model_copy(update={"limits": lab.limits.model_copy(update={"rate_limits": rl})})


async def _client(app: Any, peer: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(peer, 1234)), base_url="http://api.test")


@pytest.fixture(scope="module")
async def tight_app(settings: Settings, lab: LabDefinition, synced: list[str], issuer: FakeIssuer) -> AsyncIterator[Any]:
    application = create_app(settings=settings, lab=with_limits(lab, 3, 5), http_client=issuer.client(),
                             screener=stand_in_screener)
    async with application.router.lifespan_context(application):
        yield application


async def test_per_user_limit_429_with_retry_after(tight_app: Any, make_token: Any) -> None:
    h = {"Authorization": f"Bearer {make_token(f'rl-{uuid.uuid4().hex[:8]}', ['user'], 'acme')}"}
    async with await _client(tight_app, f"2001:db8:1::{uuid.uuid4().hex[:4]}") as c:
        codes = [(await c.get("/api/v1/conversations", headers=h)).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = await c.get("/api/v1/conversations", headers=h)
    assert r.json()["type"] == "urn:seclab:problem:rate-limited"
    assert 1 <= int(r.headers["retry-after"]) <= 60


async def test_per_address_limit_counts_unauthenticated_requests(tight_app: Any) -> None:
    async with await _client(tight_app, f"2001:db8:2::{uuid.uuid4().hex[:4]}") as c:
        codes = [(await c.get("/api/v1/conversations")).status_code for _ in range(6)]
    assert codes == [401] * 5 + [429]


async def test_forwarded_for_only_from_trusted_proxy(tight_app: Any, settings: Settings) -> None:
    proxy = settings.trusted_proxies.split(",")[0].strip()
    spoof = {"X-Forwarded-For": f"198.51.100.{uuid.uuid4().int % 250}"}
    async with await _client(tight_app, f"2001:db8:3::{uuid.uuid4().hex[:4]}") as c:
        # Untrusted peer: rotating X-Forwarded-For does not buy fresh buckets.
        codes = [(await c.get("/api/v1/conversations", headers={"X-Forwarded-For": f"203.0.113.{i}"})).status_code
                 for i in range(6)]
    assert codes[-1] == 429
    async with await _client(tight_app, proxy) as c:
        # Behind the trusted proxy each forwarded client has its own bucket.
        r = await c.get("/api/v1/conversations", headers=spoof)
    assert r.status_code == 401


@pytest.fixture(scope="module")
async def no_redis_app(settings: Settings, lab: LabDefinition, synced: list[str], issuer: FakeIssuer) -> AsyncIterator[Any]:
    # No sentinels either (the lab's app.env names them): the closed port is the one Redis address.
    broken = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0", "redis_sentinels": ""})
    application = create_app(settings=broken, lab=lab, http_client=issuer.client(), screener=stand_in_screener)
    async with application.router.lifespan_context(application):
        yield application


async def test_readyz_503_names_redis(no_redis_app: Any) -> None:
    async with await _client(no_redis_app, "2001:db8:4::1") as c:
        r = await c.get("/readyz")
    assert r.status_code == 503
    body = r.json()
    assert body["type"] == "urn:seclab:problem:upstream-unavailable"
    assert body["down"] == ["redis"] and body["checks"] == {"postgres": True, "redis": False}


async def test_api_fails_open_without_redis(no_redis_app: Any, users: dict) -> None:
    async with await _client(no_redis_app, "2001:db8:4::2") as c:
        r = await c.post("/api/v1/conversations", json={"title": "no redis"}, headers=auth(users, "alice"))
        assert r.status_code == 201, r.text
        m = await c.get("/metrics")
    assert "seclab_rate_limit_fail_open_total" in m.text
