"""The error surface of the app with no services at all: every refusal is problem+json, never a 500.

PostgreSQL and Redis point at closed ports here, which also proves readiness reporting and the
rate limiter's fail-open path without any service running.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.core.config import Settings
from app.main import create_app
from labdef import load
from tests.conftest import AUDIENCE, ISSUER, FakeIssuer

LAB = load(Path(__file__).resolve().parents[2] / "lab.yml")
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
async def app(signing_key: Any) -> AsyncIterator[FastAPI]:
    settings = Settings(
        db_host="127.0.0.1", db_port=1, redis_url="redis://127.0.0.1:1/0",
        oidc_issuer=ISSUER, oidc_audience=AUDIENCE, log_level="WARNING",
    )
    application = create_app(settings=settings, lab=LAB, http_client=FakeIssuer([signing_key]).client())

    @application.get("/boom", include_in_schema=False)
    async def boom() -> None:
        raise RuntimeError("secret internal detail")

    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="module")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                 base_url="http://api.test") as c:
        yield c


def assert_problem(r: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["type"] == f"urn:seclab:problem:{kind}"
    assert body["status"] == status
    assert body["request_id"] == r.headers["x-request-id"]
    return body


async def test_unknown_path_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/api/v1/nope"), 404, "not-found")


async def test_wrong_method_405(client: httpx.AsyncClient) -> None:
    assert_problem(await client.delete("/api/v1/conversations"), 405, "method-not-allowed")


async def test_missing_token_401_with_challenge(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/conversations")
    assert_problem(r, 401, "unauthenticated")
    assert r.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("value", ["Bearer garbage", "Basic dXNlcjpwYXNz", "Bearer a.b.c", "Bearer "])
async def test_bad_token_401_invalid_token(client: httpx.AsyncClient, value: str) -> None:
    r = await client.get("/api/v1/conversations", headers={"Authorization": value})
    assert_problem(r, 401, "unauthenticated")
    assert "error=" in r.headers["www-authenticate"]


async def test_token_in_query_string_is_ignored(client: httpx.AsyncClient, make_token: Callable[..., str]) -> None:
    r = await client.get("/api/v1/conversations", params={"access_token": make_token("u", ["user"], "acme")})
    assert r.status_code == 422 and "access_token" in r.json()["detail"]  # unknown parameter, never a credential
    r = await client.get("/api/v1/conversations")
    assert_problem(r, 401, "unauthenticated")


async def test_unknown_query_parameter_422(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/api/v1/conversations", params={"limit": 1, "debug": 1}), 422, "validation")


async def test_wrong_role_403(client: httpx.AsyncClient, make_token: Callable[..., str]) -> None:
    h = {"Authorization": f"Bearer {make_token('u', ['lab-admin'])}"}
    assert_problem(await client.get("/api/v1/conversations", headers=h), 403, "forbidden")
    h = {"Authorization": f"Bearer {make_token('u', ['user'], 'acme')}"}
    assert_problem(await client.get("/api/v1/admin/tenants", headers=h), 403, "forbidden")
    assert_problem(await client.get("/api/v1/tenant/usage", headers=h), 403, "forbidden")


async def test_missing_or_bad_tenant_claim_403(client: httpx.AsyncClient, make_token: Callable[..., str]) -> None:
    for tenant in (None, "Robert'); DROP TABLE x;--", "a"):
        h = {"Authorization": f"Bearer {make_token('u', ['user'], tenant)}"}
        assert_problem(await client.get("/api/v1/conversations", headers=h), 403, "forbidden")


async def test_oversize_body_413_declared(client: httpx.AsyncClient) -> None:
    body = json.dumps({"title": "x" * (LAB.limits.body_max_bytes + 10)})
    r = await client.post("/api/v1/conversations", content=body, headers={"content-type": "application/json"})
    assert_problem(r, 413, "payload-too-large")


async def test_oversize_body_413_chunked(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(LAB.limits.body_max_bytes // 1024 + 2):
            yield b" " * 1024

    r = await client.post("/api/v1/conversations", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in r.request.headers
    assert_problem(r, 413, "payload-too-large")


async def test_wrong_media_type_415(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/conversations", content=b"title=x",
                          headers={"content-type": "application/x-www-form-urlencoded"})
    assert_problem(r, 415, "unsupported-media-type")


@pytest.mark.parametrize("raw", [b'{"title": "\xff\xfe"}', b'{"title": ', b"[1,2", b"\x00\x01"])
async def test_invalid_json_or_utf8_is_4xx(client: httpx.AsyncClient, make_token: Callable[..., str],
                                           raw: bytes) -> None:
    h = {"Authorization": f"Bearer {make_token('u', ['lab-admin'])}", "content-type": "application/json"}
    r = await client.post("/api/v1/admin/tenants", content=raw, headers=h)
    assert r.status_code in (400, 422), r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["type"] == "urn:seclab:problem:validation"


@pytest.mark.parametrize("raw", [b'{"title": "a", "title": "b"}', b'{"x": {"k": 1, "k": 2}}'])
async def test_duplicate_json_members_are_422(client: httpx.AsyncClient, raw: bytes) -> None:
    """WAF/app parser differential (API8:2023, CWE-436): the app refuses duplicates even with the WAF off."""
    r = await client.post("/api/v1/conversations", content=raw, headers={"content-type": "application/json"})
    assert_problem(r, 422, "validation")
    assert "more than once" in r.json()["detail"]


def test_duplicate_json_member_detection() -> None:
    from app.core.middleware import duplicate_json_member

    assert duplicate_json_member(b'{"content": "hello", "content": "x"}') == "content"
    assert duplicate_json_member(b'[{"a": 1}, {"a": 2}]') is None  # same name in two objects is fine
    assert duplicate_json_member(b'{"content": "hello"}') is None
    assert duplicate_json_member(b'{"content": ') is None  # invalid JSON: the route's validation answers
    deep = b'{"content": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    assert duplicate_json_member(deep) is None  # RecursionError is not a 500 here: the route refuses it


async def test_deeply_nested_json_is_4xx(client: httpx.AsyncClient, make_token: Callable[..., str]) -> None:
    h = {"Authorization": f"Bearer {make_token('u', ['lab-admin'])}", "content-type": "application/json"}
    r = await client.post("/api/v1/admin/tenants", content=b'{"name": ' + b"[" * 5000 + b"]" * 5000 + b"}",
                          headers=h)
    assert 400 <= r.status_code < 500, r.text


async def test_unhandled_error_is_generic_500(client: httpx.AsyncClient) -> None:
    r = await client.get("/boom")
    body = assert_problem(r, 500, "internal")
    assert "secret internal detail" not in r.text and "Traceback" not in r.text
    assert set(body) == {"type", "title", "status", "request_id"}


async def test_database_down_is_503_not_500(client: httpx.AsyncClient, make_token: Callable[..., str]) -> None:
    h = {"Authorization": f"Bearer {make_token('u', ['user'], 'acme')}"}
    assert_problem(await client.get("/api/v1/conversations", headers=h), 503, "upstream-unavailable")


async def test_readyz_names_what_is_down(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/readyz"), 503, "upstream-unavailable")
    assert set(body["down"]) == {"postgres", "redis"}
    assert (await client.get("/healthz")).json() == {"status": "ok"}


async def test_request_id_echoed_when_safe_and_replaced_when_not(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz", headers={"X-Request-ID": "abc-123.DEF"})
    assert r.headers["x-request-id"] == "abc-123.DEF"
    r = await client.get("/healthz", headers=[(b"X-Request-ID", "evil\u2028value".encode("utf-8"))])
    assert len(r.headers["x-request-id"]) == 32 and "evil" not in r.headers["x-request-id"]
    r = await client.get("/healthz", headers={"X-Request-ID": "a b;c=<d>"})
    assert len(r.headers["x-request-id"]) == 32
    r = await client.get("/healthz", headers={"X-Request-ID": "x" * 200})
    assert len(r.headers["x-request-id"]) == 32


async def test_metrics_use_route_templates(client: httpx.AsyncClient) -> None:
    cid = uuid.uuid4()
    await client.get(f"/api/v1/conversations/{cid}")
    text = (await client.get("/metrics")).text
    assert 'route="/api/v1/conversations/{conversation_id}"' in text
    assert str(cid) not in text


async def test_owner_routes_say_tenant_admin_is_off_when_the_owner_secret_is_unreadable() -> None:
    """The API never holds the schema owner's password by default; lab-admin tenant routes then
    answer a clear 503 problem instead of a generic database error."""
    from app.api.deps import owner_conn
    from app.core.config import Settings
    from app.core.problems import Problem

    settings = Settings(db_owner_password_file="/nonexistent/db_owner_password")
    gen = owner_conn(settings)
    with pytest.raises(Problem) as exc:
        await gen.__anext__()
    assert exc.value.status == 503 and exc.value.kind == "admin-unavailable"


@pytest.mark.parametrize("conv_id", [
    "00000000000000000000000000000000",             # bare hex: Python's UUID() takes it
    "{00000000-0000-0000-0000-000000000000}",       # braces
    "urn:uuid:00000000-0000-0000-0000-000000000000",
    "00000000-0000-0000-0000-00000000000G",
])
@pytest.mark.parametrize("content", ["hello", "", "x" * 16001])
async def test_malformed_path_id_is_422_before_the_database(
    client: httpx.AsyncClient, make_token: Callable[..., str], conv_id: str, content: str
) -> None:
    # PostgreSQL is a closed port here: reaching it would answer 503, so a 422 proves validation came first.
    token = make_token("alice", ["user"], "acme")
    r = await client.post(f"/api/v1/conversations/{conv_id}/messages", json={"content": content},
                          headers={"Authorization": f"Bearer {token}"})
    assert_problem(r, 422, "validation")


async def test_out_of_bounds_body_is_422_before_the_database(
    client: httpx.AsyncClient, make_token: Callable[..., str]
) -> None:
    token = make_token("alice", ["user"], "acme")
    for content in ("", "x" * 16001):
        r = await client.post(f"/api/v1/conversations/{uuid.uuid4()}/messages", json={"content": content},
                              headers={"Authorization": f"Bearer {token}"})
        assert_problem(r, 422, "validation")
