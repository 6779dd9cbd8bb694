"""Bearer-token validation against the realm's JWKS (Keycloak or the stand-in issuer).

Decisions, each with its reason:
- Token only from the `Authorization` header: query strings leak into logs and caches, cookies
  invite CSRF (RFC 6750 §2.3 and §5.3, ASVS 4.0.3 V3.1.1 no session tokens in URLs).
- RS256 pinned, `alg` from the token is never trusted: defeats `alg: none` and the HS256-with-
  the-public-key confusion (ASVS 4.0.3 V3.5.3, OWASP API2:2023 broken authentication).
- `iss`, `aud` (a list may contain us), `exp`, `nbf` with 30 s leeway, `sub` required (ASVS V3.5.3).
- Keys are cached; an unknown `kid` refetches the JWKS at most once per interval, so forged kids
  cannot turn the API into a request amplifier against the IdP (OWASP API4:2023).
"""


import asyncio
import base64
import json
import logging
import time
from typing import Annotated, Any

import httpx
from fastapi import Depends, Request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey
from joserfc.jwt import JWTClaimsRegistry
from pydantic import BaseModel, ConfigDict

from app.core.context import set_identity
from app.core.problems import Problem
from labdef import NAME_PATTERN

ALGORITHM = "RS256"
TENANT_RE = NAME_PATTERN
"""The lab.yml tenant-name rule (labdef.NAME_RE): the claim becomes a SQL identifier."""

log = logging.getLogger("seclab.security")


class Principal(BaseModel):
    """Who is calling, from a validated token only."""

    model_config = ConfigDict(frozen=True)

    sub: str
    username: str | None = None
    roles: frozenset[str] = frozenset()
    tenant: str | None = None
    client_id: str | None = None


class AuthError(Exception):
    """A token that must be answered with 401 invalid_token."""


class JwksUnavailable(Exception):
    """The issuer's JWKS could not be fetched and no usable key is cached."""


class JwksCache:
    """JWKS keys by kid, refetched on an unknown kid at most once per `min_refresh_s`."""

    def __init__(self, client: httpx.AsyncClient, url: str, min_refresh_s: float = 30.0) -> None:
        self._client = client
        self._url = url
        self._min_refresh_s = min_refresh_s
        self._keys: dict[str, RSAKey] = {}
        self._last_fetch: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def _fetch(self) -> None:
        self._last_fetch = time.monotonic()
        self.fetches += 1
        try:
            resp = await self._client.get(self._url, timeout=5.0)
            resp.raise_for_status()
            data = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise JwksUnavailable(f"JWKS fetch failed: {type(exc).__name__}") from None
        keys: dict[str, RSAKey] = {}
        for jwk in data.get("keys", []) if isinstance(data, dict) else []:
            if not isinstance(jwk, dict) or jwk.get("kty") != "RSA" or jwk.get("use", "sig") != "sig":
                continue
            if jwk.get("alg", ALGORITHM) != ALGORITHM or not isinstance(jwk.get("kid"), str):
                continue
            try:
                keys[jwk["kid"]] = RSAKey.import_key(jwk)
            except (JoseError, ValueError, TypeError):
                continue
        self._keys = keys

    async def get(self, kid: str) -> RSAKey:
        key = self._keys.get(kid)
        if key is not None:
            return key
        async with self._lock:
            key = self._keys.get(kid)
            if key is not None:
                return key
            now = time.monotonic()
            if self._last_fetch is None or now - self._last_fetch >= self._min_refresh_s:
                try:
                    await self._fetch()
                except JwksUnavailable:
                    if not self._keys:
                        raise
                key = self._keys.get(kid)
        if key is None:
            raise AuthError("unknown key id")
        return key


def _unverified_header(token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3:
        raise AuthError("not a compact JWS")
    try:
        seg = parts[0] + "=" * (-len(parts[0]) % 4)
        header = json.loads(base64.urlsafe_b64decode(seg.encode("ascii")))
    except (ValueError, UnicodeError):
        raise AuthError("malformed header") from None
    if not isinstance(header, dict):
        raise AuthError("malformed header")
    return header


class TokenValidator:
    def __init__(
        self,
        jwks: JwksCache,
        issuer: str,
        audience: str,
        leeway_s: int = 30,
    ) -> None:
        self.jwks = jwks
        self.issuer = issuer
        self.audience = audience
        self.leeway_s = leeway_s

    async def validate(self, token: str) -> Principal:
        if len(token) > 8192:
            raise AuthError("token too large")
        header = _unverified_header(token)
        if header.get("alg") != ALGORITHM:
            raise AuthError("algorithm not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthError("kid missing")
        key = await self.jwks.get(kid)
        try:
            decoded = jwt.decode(token, key, algorithms=[ALGORITHM])
            registry = JWTClaimsRegistry(
                leeway=self.leeway_s,
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": self.audience},
                sub={"essential": True},
                exp={"essential": True},
            )
            registry.validate(decoded.claims)
        except (JoseError, ValueError, TypeError) as exc:
            raise AuthError(type(exc).__name__) from None
        claims = decoded.claims
        if not isinstance(claims.get("sub"), str):
            raise AuthError("sub must be a string")
        realm_access = claims.get("realm_access")
        roles_raw = realm_access.get("roles", []) if isinstance(realm_access, dict) else []
        roles = frozenset(r for r in roles_raw if isinstance(r, str)) if isinstance(roles_raw, list) else frozenset()
        tenant = claims.get("tenant")
        username = claims.get("preferred_username")
        azp = claims.get("azp")
        return Principal(
            sub=claims["sub"][:255],
            username=username[:255] if isinstance(username, str) else None,
            roles=roles,
            tenant=tenant if isinstance(tenant, str) else None,
            client_id=azp if isinstance(azp, str) else None,
        )


def _unauthenticated(error: str | None) -> Problem:
    # RFC 6750 §3.1: no error code when the request carried no credentials at all.
    challenge = 'Bearer realm="seclab"' + (f', error="{error}"' if error else "")
    return Problem(
        401,
        "unauthenticated",
        "a valid bearer token is required" if error else "no bearer token in the Authorization header",
        headers={"WWW-Authenticate": challenge},
    )


async def get_principal(request: Request) -> Principal:
    """Dependency: the caller, from `Authorization: Bearer` only."""
    validator: TokenValidator = request.app.state.token_validator
    value = request.headers.get("authorization")
    if not value:
        raise _unauthenticated(None)
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthenticated("invalid_request")
    try:
        principal = await validator.validate(token.strip())
    except AuthError as exc:
        log.info("token rejected", extra={"event.reason": str(exc)[:100]})
        raise _unauthenticated("invalid_token") from None
    except JwksUnavailable:
        raise Problem(503, "upstream-unavailable", "the identity provider's keys are unavailable") from None
    set_identity(principal.sub, principal.tenant)
    return principal


def require_role(role: str, *, tenant: bool) -> Any:
    """Dependency factory: role check (RBAC per route, ASVS 4.0.3 V4.1.3; OWASP API5:2023)."""

    async def _dep(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if role not in principal.roles:
            raise Problem(403, "forbidden", f"the role {role!r} is required")
        if tenant and (principal.tenant is None or not TENANT_RE.match(principal.tenant)):
            raise Problem(403, "forbidden", "the token carries no valid tenant claim")
        return principal

    return _dep


ChatUser = Annotated[Principal, Depends(require_role("user", tenant=True))]
TenantAdmin = Annotated[Principal, Depends(require_role("tenant-admin", tenant=True))]
LabAdmin = Annotated[Principal, Depends(require_role("lab-admin", tenant=False))]
