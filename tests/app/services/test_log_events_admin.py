"""The lab-admin events route with a fake log engine: thin route, validated id, problem+json on failure.

The fake stands in for the engine behind its gateway (httpx MockTransport): it records what the API
asks for, so the test also proves the API only ever searches the lab's indices.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.core.config import Settings
from app.main import create_app
from app.services import log_events
from labdef import load
from tests.conftest import AUDIENCE, ISSUER, FakeIssuer

LAB = load(Path(__file__).resolve().parents[3] / "lab.yml")
RID = "0123456789abcdef0123456789abcdef"
HITS = [
    {"_index": "seclab-logs-nginx.access-2026.12.03",
     "_source": {"@timestamp": "2026-12-03T09:00:00.100Z", "event": {"dataset": "nginx.access"},
                 "http": {"request": {"id": RID, "method": "POST"}, "response": {"status_code": 403}},
                 "url": {"path": "/api/v1/conversations"}}},
    {"_index": "seclab-logs-nginx.error-2026.12.03",
     "_source": {"@timestamp": "2026-12-03T09:00:00.200Z", "log": {"level": "warn"},
                 "message": 'ModSecurity: Access denied with code 403 [id "949110"]'}},
]


class FakeEngine:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.down = False

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json={"hits": {"hits": HITS}})


def settings(**kw: Any) -> Settings:
    return Settings(db_host="127.0.0.1", db_port=1, redis_url="redis://127.0.0.1:1/0", oidc_issuer=ISSUER,
                    oidc_audience=AUDIENCE, log_level="WARNING", **kw)


WITH_ENGINE = {"logsearch_url": "https://gateway.test:9200", "logsearch_ca_file": "/nonexistent/ca.crt",
               "logsearch_cert_file": "/nonexistent/log-search.crt", "logsearch_key_file": "/nonexistent/log-search.key"}


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    fake = FakeEngine()

    def fake_client(gw: Any, timeout_s: float = 30.0) -> httpx.AsyncClient:
        assert gw.url == WITH_ENGINE["logsearch_url"] and str(gw.cert_file) == WITH_ENGINE["logsearch_cert_file"]
        return httpx.AsyncClient(base_url=gw.url, transport=httpx.MockTransport(fake.handler))

    monkeypatch.setattr(log_events, "client", fake_client)
    return fake


async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
        yield c


@pytest.fixture
async def client(signing_key: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings=settings(**WITH_ENGINE), lab=LAB, http_client=FakeIssuer([signing_key]).client())
    async for c in _client(app):
        yield c


def admin(make_token: Callable[..., str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token('root', ['lab-admin'])}"}


async def test_events_of_a_request_in_time_order(client: httpx.AsyncClient, engine: FakeEngine,
                                                 make_token: Callable[..., str]) -> None:
    r = await client.get("/api/v1/admin/request-events", params={"request_id": RID}, headers=admin(make_token))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["request_id"] == RID
    assert body["items"] == [
        {"ts": "2026-12-03T09:00:00.100Z", "dataset": "nginx.access", "level": None,
         "message": "POST /api/v1/conversations 403"},
        {"ts": "2026-12-03T09:00:00.200Z", "dataset": "nginx.error", "level": "warn",
         "message": 'ModSecurity: Access denied with code 403 [id "949110"]'},
    ]
    # One search of the lab's indices only, oldest first, the id as a term (never a query string).
    (req,) = engine.requests
    assert (req.method, req.url.path) == ("POST", "/seclab-logs-*/_search")
    query = json.loads(req.content)
    assert query["sort"] == [{"@timestamp": {"order": "asc", "unmapped_type": "date"}}]
    assert {"term": {"http.request.id": RID}} in query["query"]["bool"]["must"][0]["bool"]["should"]


@pytest.mark.parametrize("rid", ["short", "x" * 129, "a b c d e f g h", "id;rm -rf /", "../../../_all"])
async def test_a_malformed_request_id_is_a_422_problem(client: httpx.AsyncClient, engine: FakeEngine,
                                                      make_token: Callable[..., str], rid: str) -> None:
    r = await client.get("/api/v1/admin/request-events", params={"request_id": rid}, headers=admin(make_token))
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"] == "urn:seclab:problem:validation"
    assert engine.requests == []  # refused before anything reached the engine


async def test_lab_admin_only(client: httpx.AsyncClient, engine: FakeEngine, make_token: Callable[..., str]) -> None:
    assert (await client.get("/api/v1/admin/request-events", params={"request_id": RID})).status_code == 401
    user = {"Authorization": f"Bearer {make_token('alice', ['user'], 'acme')}"}
    r = await client.get("/api/v1/admin/request-events", params={"request_id": RID}, headers=user)
    assert r.status_code == 403 and r.json()["type"] == "urn:seclab:problem:forbidden"
    assert engine.requests == []


async def test_engine_down_is_a_503_problem(client: httpx.AsyncClient, engine: FakeEngine,
                                            make_token: Callable[..., str]) -> None:
    engine.down = True
    r = await client.get("/api/v1/admin/request-events", params={"request_id": RID}, headers=admin(make_token))
    assert r.status_code == 503 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"] == "urn:seclab:problem:upstream-unavailable"
    assert "connection refused" not in r.text  # no internal detail


async def test_no_engine_configured_is_a_503_problem(signing_key: Any, make_token: Callable[..., str]) -> None:
    app = create_app(settings=settings(), lab=LAB, http_client=FakeIssuer([signing_key]).client())
    async for c in _client(app):
        r = await c.get("/api/v1/admin/request-events", params={"request_id": RID}, headers=admin(make_token))
        assert r.status_code == 503 and r.json()["type"] == "urn:seclab:problem:upstream-unavailable"


async def test_missing_client_certificate_is_a_503_problem(signing_key: Any, make_token: Callable[..., str]) -> None:
    """The real client, with certificate files that are not there (provisioning incomplete): 503, not 500."""
    app = create_app(settings=settings(**WITH_ENGINE), lab=LAB, http_client=FakeIssuer([signing_key]).client())
    async for c in _client(app):
        r = await c.get("/api/v1/admin/request-events", params={"request_id": RID}, headers=admin(make_token))
        assert r.status_code == 503 and r.json()["type"] == "urn:seclab:problem:upstream-unavailable"
