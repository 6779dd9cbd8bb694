"""Shared test helpers: a test RSA key, token minting and an in-process JWKS issuer.

The issuer is a tiny ASGI app reached through `httpx.ASGITransport`, the same seam the real app
uses for Keycloak or the stand-in IdP (`http_client=` of `create_app`).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

ISSUER = "http://idp.test/realms/seclab"
AUDIENCE = "seclab-api"
JWKS_URL = ISSUER + "/protocol/openid-connect/certs"
KID = "test-key-1"


class FakeIssuer:
    """Serves a JWKS for the test keys and counts fetches (to prove the refetch throttle)."""

    def __init__(self, keys: list[RSAKey]) -> None:
        self.keys = keys
        self.fetches = 0
        self.app = Starlette(routes=[Route("/realms/seclab/protocol/openid-connect/certs", self.certs)])

    async def certs(self, request: Request) -> JSONResponse:
        self.fetches += 1
        return JSONResponse({"keys": [k.as_dict(private=False, alg="RS256", use="sig") for k in self.keys]})

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://idp.test")


@pytest.fixture(scope="session")
def signing_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": KID}, private=True)


@pytest.fixture(scope="session")
def other_key() -> RSAKey:
    """A key the issuer does not publish (forged tokens)."""
    return RSAKey.generate_key(2048, parameters={"kid": "attacker-key"}, private=True)


def claims_for(
    sub: str, roles: list[str], tenant: str | None = None, *, lifetime: int = 300, **extra: Any
) -> dict[str, Any]:
    now = int(time.time())
    c: dict[str, Any] = {
        "iss": ISSUER, "aud": [AUDIENCE, "account"], "azp": "seclab-cli", "sub": sub,
        "preferred_username": sub, "realm_access": {"roles": roles}, "sid": uuid.uuid4().hex,
        "iat": now, "nbf": now, "exp": now + lifetime,
    }
    if tenant is not None:
        c["tenant"] = tenant
    c.update(extra)
    return c


def mint(key: RSAKey, claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    h = {"alg": "RS256", "typ": "JWT", "kid": key.kid}
    h.update(header or {})
    return jwt.encode(h, claims, key)


@pytest.fixture(scope="session")
def make_token(signing_key: RSAKey) -> Callable[..., str]:
    def _make(sub: str, roles: list[str], tenant: str | None = None, **extra: Any) -> str:
        return mint(signing_key, claims_for(sub, roles, tenant, **extra))

    return _make


def need(available: bool, what: str) -> None:
    """Skip a test whose prerequisite is missing, except under `./lab test` (SECLAB_REQUIRE_LAB=1).

    `./lab up` installs every tool and service the suite uses, so under `./lab test` a missing one is
    a provisioning bug and fails the test instead of hiding behind a skip. A bare `pytest` run on a
    developer's laptop without the lab still skips, with the reason.
    """
    if available:
        return
    if os.environ.get("SECLAB_REQUIRE_LAB") == "1":
        pytest.fail(f"missing: {what} (./lab up provisions it; SECLAB_REQUIRE_LAB=1)", pytrace=False)
    pytest.skip(f"missing: {what}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `late` run after all others, in their collected order: they change the lab's state
    for a while (the attack run locks carol out by design; re-provisioning restarts services)."""
    items.sort(key=lambda item: item.get_closest_marker("late") is not None)
