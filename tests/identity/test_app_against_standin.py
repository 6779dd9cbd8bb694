"""End to end: the chat API (app.main.create_app) validates tokens minted by the in-process stand-in.

The attacks of the identity issue, each answered 401 + WWW-Authenticate (unauthenticated) or
403 (forbidden) as RFC 9457 problem+json. Redis and PostgreSQL are not needed: every case is decided
before a route touches the database, and the rate limiter is replaced by an allow-all fake.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
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
from labdef.realm import PROBE_CLIENT_ID, build_realm_export, user_id
from seclab.idp.issuer import Issuer

from .conftest import BASE, StandIn

PROBLEM = "urn:seclab:problem:"


class AllowAll:
    """Rate limiter stand-in: these tests are about identity, not about Redis."""

    async def hit(self, scope: str, identity: str, limit: int) -> Decision:
        return Decision(allowed=True, retry_after_s=0, count=1, checked=False)


@dataclass
class Api:
    client: httpx.AsyncClient
    app: Any


@pytest.fixture
async def api(standin: StandIn) -> AsyncIterator[Api]:
    settings = Settings(oidc_issuer=f"{BASE}/realms/seclab", oidc_audience=standin.lab.identity.api_audience)
    idp_http = httpx.AsyncClient(transport=standin.client._transport, base_url=BASE)
    # A client for a closed port: never used (rate limiting is replaced below), only constructed.
    unused_redis = aioredis.Redis(host="127.0.0.1", port=1)
    application = create_app(settings=settings, lab=standin.lab, http_client=idp_http, redis=unused_redis)
    async with application.router.lifespan_context(application):
        application.state.rate_limiter = AllowAll()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://api.test") as c:
            yield Api(c, application)
    await idp_http.aclose()


async def _token(standin: StandIn, user: str) -> str:
    r = await standin.password_grant(user)
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


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


def _issuer_variant(standin: StandIn, *, base: str = BASE, realm: str | None = None,
                    audience: str | None = None, clock: Any = None) -> Issuer:
    """Another issuer sharing the real signing keys: the signature verifies, only the claims differ."""
    ident = standin.lab.identity.model_copy(update={k: v for k, v in
                                                    {"realm": realm, "api_audience": audience}.items() if v})
    lab = standin.lab.model_copy(update={"identity": ident})
    return Issuer(build_realm_export(lab), base, standin.keys, standin.issuer.credentials,
                  clock=clock or standin.clock)


async def _mint(issuer: Issuer, user: str, standin: StandIn) -> str:
    client = issuer.realm.client(standin.lab.identity.cli_client_id)
    assert client is not None
    body = await issuer.token({"grant_type": "password", "client_id": client.client_id, "username": user,
                               "password": standin.passwords[user]})
    return str(body["access_token"])


# ------------------------------------------------------------------ the positive control
async def test_app_accepts_the_standins_token(standin: StandIn, api: Api) -> None:
    principal = await api.app.state.token_validator.validate(await _token(standin, "carol"))
    assert principal.sub == user_id("seclab", "carol") and principal.tenant == "acme"
    assert principal.roles == frozenset({"user", "tenant-admin"}) and principal.client_id == "seclab-cli"


async def test_no_token_is_401_without_error_code(api: Api) -> None:
    r = await api.client.get("/api/v1/conversations")
    assert r.status_code == 401 and r.json()["type"] == PROBLEM + "unauthenticated"
    assert r.headers["www-authenticate"] == 'Bearer realm="seclab"'


# ------------------------------------------------------------------ forged signatures
async def test_alg_none(standin: StandIn, api: Api) -> None:
    header, payload, _ = _parts(await _token(standin, "alice"))
    payload["realm_access"]["roles"] = ["user", "lab-admin"]
    await _assert_401(api, f"{_b64({**header, 'alg': 'none'})}.{_b64(payload)}.")


async def test_hs256_signed_with_the_rsa_public_key(standin: StandIn, api: Api) -> None:
    # joserfc refuses to make an HMAC key of a PEM (good); the attacker signs by hand with the JWKS key.
    jwk = (await standin.client.get("/realms/seclab/protocol/openid-connect/certs")).json()["keys"][0]
    secret = RSAKey.import_key(jwk).as_pem(private=False)
    _, payload, _ = _parts(await _token(standin, "alice"))
    payload["realm_access"] = {"roles": ["lab-admin"]}
    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT', 'kid': jwk['kid']})}.{_b64(payload)}"
    sig = base64.urlsafe_b64encode(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()).decode().rstrip("=")
    await _assert_401(api, f"{signing_input}.{sig}")


async def test_payload_changed_after_signing(standin: StandIn, api: Api) -> None:
    header, payload, sig = _parts(await _token(standin, "alice"))
    payload["tenant"] = "globex"
    await _assert_401(api, f"{_b64(header)}.{_b64(payload)}.{sig}")


@pytest.mark.parametrize("kid", ["known", "unknown"])
async def test_key_the_issuer_never_had(standin: StandIn, api: Api, kid: str) -> None:
    _, payload, _ = _parts(await _token(standin, "alice"))
    attacker = RSAKey.generate_key(2048, private=True)
    header = {"alg": "RS256", "typ": "JWT", "kid": standin.keys.signing_key().kid if kid == "known" else attacker.thumbprint()}
    await _assert_401(api, jwt.encode(header, {**payload, "realm_access": {"roles": ["lab-admin"]}}, attacker))


# ------------------------------------------------------------------ wrong claims, valid signature
async def test_expired_token(standin: StandIn, api: Api) -> None:
    past = _issuer_variant(standin, clock=lambda: standin.clock() - 3600)
    await _assert_401(api, await _mint(past, "alice", standin))


async def test_not_yet_valid_token(standin: StandIn, api: Api) -> None:
    future = _issuer_variant(standin, clock=lambda: standin.clock() + 3600)
    await _assert_401(api, await _mint(future, "alice", standin))


async def test_wrong_issuer(standin: StandIn, api: Api) -> None:
    await _assert_401(api, await _mint(_issuer_variant(standin, base="http://evil.test"), "alice", standin))


async def test_wrong_audience(standin: StandIn, api: Api) -> None:
    await _assert_401(api, await _mint(_issuer_variant(standin, audience="another-api"), "alice", standin))


async def test_token_from_another_realm(standin: StandIn, api: Api) -> None:
    await _assert_401(api, await _mint(_issuer_variant(standin, realm="other"), "alice", standin))


# ------------------------------------------------------------------ RBAC with valid tokens
async def test_user_on_tenant_admin_and_lab_admin_routes(standin: StandIn, api: Api) -> None:
    alice = await _token(standin, "alice")
    await _assert_403(api, alice, "/api/v1/tenant/usage")
    await _assert_403(api, alice, "/api/v1/admin/tenants")


async def test_tenant_admin_on_lab_admin_route(standin: StandIn, api: Api) -> None:
    await _assert_403(api, await _token(standin, "carol"), "/api/v1/admin/tenants")


async def test_machine_token_without_role(standin: StandIn, api: Api) -> None:
    basic = base64.b64encode(f"{PROBE_CLIENT_ID}:{standin.probe_secret()}".encode()).decode()
    r = await standin.client.post("/realms/seclab/protocol/openid-connect/token",
                                  data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"})
    await _assert_403(api, r.json()["access_token"], "/api/v1/conversations")
