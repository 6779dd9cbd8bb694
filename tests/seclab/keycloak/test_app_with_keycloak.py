"""End to end: the chat API (app.main.create_app) validates tokens that the live Keycloak issued.

The app fetches Keycloak's JWKS over loopback HTTPS exactly as provisioned (lab CA). The attacks of
the identity issue, each answered 401 + WWW-Authenticate (unauthenticated) or 403 (forbidden) as
RFC 9457 problem+json. Redis and PostgreSQL are not needed: every case is decided before a route
touches the database, and the rate limiter is replaced by an allow-all fake. Tokens with wrong
claims and a *valid* Keycloak signature come from Keycloak itself: a throw-away client without the
API audience, one whose tokens live 1 s, and a throw-away realm (another issuer, other keys).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from joserfc import jwt
from joserfc.jwk import RSAKey

from app.core.config import Settings
from app.core.ratelimit import Decision
from app.main import create_app
from labdef.realm import PROBE_CLIENT_ID
from seclab.keycloak import access

from .conftest import Keycloak

pytestmark = pytest.mark.integration  # live: the lab's Keycloak

PROBLEM = "urn:seclab:problem:"


class AllowAll:
    """Rate limiter fake: these tests are about identity, not about Redis."""

    async def hit(self, scope: str, identity: str, limit: int) -> Decision:
        return Decision(allowed=True, retry_after_s=0, count=1, checked=False)


@dataclass
class Api:
    client: httpx.AsyncClient
    app: Any


@pytest.fixture
async def api(kc: Keycloak) -> AsyncIterator[Api]:
    lab = kc.lab
    settings = Settings(
        oidc_issuer=lab.issuer, oidc_audience=lab.identity.api_audience, oidc_leeway_s=0,
        oidc_jwks_url=f"{access.base_url(lab)}/realms/{lab.identity.realm}/protocol/openid-connect/certs",
        oidc_ca_file=str(access.ca_file(lab)),
    )
    unused_redis = aioredis.Redis(host="127.0.0.1", port=1)  # constructed, never used (rate limiter faked)
    application = create_app(settings=settings, lab=lab, redis=unused_redis)
    async with application.router.lifespan_context(application):
        application.state.rate_limiter = AllowAll()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://api.test") as c:
            yield Api(c, application)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    h, p, s = token.split(".")
    pad = lambda x: x + "=" * (-len(x) % 4)
    return json.loads(base64.urlsafe_b64decode(pad(h))), json.loads(base64.urlsafe_b64decode(pad(p))), s


async def _assert_401(api: Api, token: str, path: str = "/api/v1/conversations") -> None:
    r = await api.client.get(path, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"] == PROBLEM + "unauthenticated"
    assert r.headers["www-authenticate"].startswith("Bearer") and 'error="invalid_token"' in r.headers["www-authenticate"]


async def _assert_403(api: Api, token: str, path: str) -> None:
    r = await api.client.get(path, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403, r.text
    assert r.json()["type"] == PROBLEM + "forbidden"


def _client_token(kc: Keycloak, rep: dict[str, Any], realm: str | None = None) -> str:
    client_id = "it-" + uuid.uuid4().hex[:8]
    secret = kc.temp_client({"clientId": client_id, "serviceAccountsEnabled": True, "standardFlowEnabled": False,
                             "directAccessGrantsEnabled": False, **rep}) if realm is None else rep["secret"]
    r = kc.http.post(f"/realms/{realm or kc.realm}/protocol/openid-connect/token",
                     data={"grant_type": "client_credentials"}, auth=(rep.get("clientId", client_id), secret))
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


@pytest.fixture
def other_realm(kc: Keycloak) -> Iterator[str]:
    """A throw-away realm on the same Keycloak: its tokens are genuine, from another issuer and key."""
    name = "it-" + uuid.uuid4().hex[:8]
    r = kc.admin("POST", "", json={"realm": name, "enabled": True, "sslRequired": "all"})
    assert r.status_code == 201, r.text
    try:
        yield name
    finally:
        kc.admin("DELETE", f"/{name}")


# ------------------------------------------------------------------ the positive control
async def test_app_accepts_keycloaks_token(kc: Keycloak, api: Api) -> None:
    token = kc.token("carol")["access_token"]
    principal = await api.app.state.token_validator.validate(token)
    uid = kc.admin("GET", f"/{kc.realm}/users", params={"username": "carol", "exact": "true"}).json()[0]["id"]
    assert principal.sub == uid and principal.tenant == "acme" and principal.username == "carol"
    assert {"user", "tenant-admin"} <= principal.roles and principal.client_id == "seclab-cli"


async def test_no_token_is_401_without_error_code(api: Api) -> None:
    r = await api.client.get("/api/v1/conversations")
    assert r.status_code == 401 and r.json()["type"] == PROBLEM + "unauthenticated"
    assert r.headers["www-authenticate"] == 'Bearer realm="seclab"'


# ------------------------------------------------------------------ forged signatures
async def test_alg_none(kc: Keycloak, api: Api) -> None:
    header, payload, _ = _parts(kc.token("alice")["access_token"])
    payload["realm_access"]["roles"] = ["user", "lab-admin"]
    await _assert_401(api, f"{_b64({**header, 'alg': 'none'})}.{_b64(payload)}.")


async def test_hs256_signed_with_keycloaks_public_key(kc: Keycloak, api: Api) -> None:
    jwk = next(k for k in kc.http.get(f"{kc.oidc}/certs").json()["keys"] if k.get("alg") == "RS256")
    secret = RSAKey.import_key(jwk).as_pem(private=False)
    _, payload, _ = _parts(kc.token("alice")["access_token"])
    payload["realm_access"] = {"roles": ["lab-admin"]}
    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT', 'kid': jwk['kid']})}.{_b64(payload)}"
    sig = base64.urlsafe_b64encode(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()).decode().rstrip("=")
    await _assert_401(api, f"{signing_input}.{sig}")


async def test_payload_changed_after_signing(kc: Keycloak, api: Api) -> None:
    header, payload, sig = _parts(kc.token("alice")["access_token"])
    payload["tenant"] = "globex"
    await _assert_401(api, f"{_b64(header)}.{_b64(payload)}.{sig}")


@pytest.mark.parametrize("kid", ["keycloaks", "unknown"])
async def test_key_keycloak_never_had(kc: Keycloak, api: Api, kid: str) -> None:
    header, payload, _ = _parts(kc.token("alice")["access_token"])
    attacker = RSAKey.generate_key(2048, private=True)
    forged = {"alg": "RS256", "typ": "JWT", "kid": header["kid"] if kid == "keycloaks" else attacker.thumbprint()}
    await _assert_401(api, jwt.encode(forged, {**payload, "realm_access": {"roles": ["lab-admin"]}}, attacker))


# ------------------------------------------------------------------ genuine Keycloak tokens, wrong claims
async def test_expired_token(kc: Keycloak, api: Api) -> None:
    token = _client_token(kc, {"attributes": {"access.token.lifespan": "1"}, "defaultClientScopes": ["basic", "seclab-claims"]})
    await asyncio.sleep(2.5)
    await _assert_401(api, token)


async def test_token_for_another_audience(kc: Keycloak, api: Api) -> None:
    token = _client_token(kc, {"defaultClientScopes": ["basic"]})
    _, payload, _ = _parts(token)
    assert kc.lab.identity.api_audience not in (payload.get("aud") or [])
    await _assert_401(api, token)


async def test_token_from_another_realm(kc: Keycloak, api: Api, other_realm: str) -> None:
    secret = "it-" + uuid.uuid4().hex
    r = kc.admin("POST", f"/{other_realm}/clients", json={
        "clientId": "thief", "protocol": "openid-connect", "publicClient": False, "secret": secret,
        "serviceAccountsEnabled": True, "standardFlowEnabled": False})
    assert r.status_code == 201, r.text
    token = _client_token(kc, {"clientId": "thief", "secret": secret}, realm=other_realm)
    assert _parts(token)[1]["iss"].endswith(f"/realms/{other_realm}")
    await _assert_401(api, token)


# ------------------------------------------------------------------ RBAC with valid tokens
async def test_user_on_tenant_admin_and_lab_admin_routes(kc: Keycloak, api: Api) -> None:
    alice = kc.token("alice")["access_token"]
    await _assert_403(api, alice, "/api/v1/tenant/usage")
    await _assert_403(api, alice, "/api/v1/admin/tenants")


async def test_tenant_admin_on_lab_admin_route(kc: Keycloak, api: Api) -> None:
    await _assert_403(api, kc.token("carol")["access_token"], "/api/v1/admin/tenants")


async def test_machine_token_without_role(kc: Keycloak, api: Api) -> None:
    r = kc.http.post(f"{kc.oidc}/token", data={"grant_type": "client_credentials"},
                     auth=(PROBE_CLIENT_ID, kc.probe_secret()))
    assert r.status_code == 200, r.text
    await _assert_403(api, r.json()["access_token"], "/api/v1/conversations")


async def test_jwks_is_fetched_verified(kc: Keycloak) -> None:
    """The app refuses a JWKS endpoint whose certificate the lab root did not sign (no forged key set)."""
    ctx = ssl.create_default_context()  # the system store only: the lab CA is not in it
    async with httpx.AsyncClient(verify=ctx) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{access.base_url(kc.lab)}{kc.oidc}/certs")
