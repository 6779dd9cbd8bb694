"""The stand-in's token logic: Keycloak's grants, claims, lifetimes, brute-force lockout and errors.

State (sessions, refresh tokens, login failures, revoked access-token ids, used OTP steps) lives in
memory: the stand-in runs as ONE uvicorn worker and a restart logs everybody out (acceptable for a
lab; Keycloak keeps these in its database/Infinispan). Every time comes from the injected `clock`, so
tests can age tokens and lockouts without sleeping.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwt import JWTClaimsRegistry
from pydantic import BaseModel

from labdef import totp
from seclab.idp.keys import KeyStore
from seclab.idp.realmview import Client, RealmView, User

log = logging.getLogger("seclab.idp")

INVALID_USER = "Invalid user credentials"  # Keycloak's one answer for bad password, unknown user, lockout
_DUMMY_HASH = PasswordHasher().hash(secrets.token_urlsafe(16))


class Credentials(BaseModel):
    """The stand-in's credential file (0600): argon2 password hashes, OTP seeds, client-secret hashes."""

    users: dict[str, str] = {}
    otp: dict[str, str] = {}
    clients: dict[str, str] = {}  # sha256 hex of high-entropy client secrets

    @classmethod
    def load(cls, path: Path) -> Credentials:
        return cls.model_validate_json(path.read_text(encoding="utf-8")) if path.exists() else cls()


class OAuthError(Exception):
    """An RFC 6749 5.2 error response: `{"error", "error_description"}` with its status."""

    def __init__(self, status: int, error: str, description: str, headers: dict[str, str] | None = None):
        super().__init__(f"{error}: {description}")
        self.status, self.error, self.description = status, error, description
        self.headers = headers or {}

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


@dataclass
class Session:
    sid: str
    user: User
    client_id: str
    scope: str
    started: float
    last_seen: float
    active: bool = True


@dataclass
class RefreshRecord:
    sid: str
    client_id: str
    expires: float
    used: bool = False


@dataclass
class Failures:
    count: int = 0
    last: float = 0.0
    not_before: float = 0.0


@dataclass
class MemoryState:
    sessions: dict[str, Session] = field(default_factory=dict)
    refresh: dict[str, RefreshRecord] = field(default_factory=dict)
    failures: dict[str, Failures] = field(default_factory=dict)
    revoked_jti: dict[str, float] = field(default_factory=dict)
    otp_last_step: dict[str, int] = field(default_factory=dict)
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    events: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=1000))


def _digest(token: str) -> str:
    """Refresh tokens are stored by hash: a memory dump does not hand out live tokens."""
    return hashlib.sha256(token.encode()).hexdigest()


class Issuer:
    """One realm, served with Keycloak's token semantics."""

    def __init__(
        self,
        realm: Mapping[str, Any],
        issuer_base: str,
        keys: KeyStore,
        credentials: Credentials,
        *,
        clock: Callable[[], float] = time.time,
        state: MemoryState | None = None,
    ) -> None:
        self.realm = RealmView.model_validate(realm)
        self.issuer = f"{issuer_base.rstrip('/')}/realms/{self.realm.realm}"
        self.keys = keys
        self.credentials = credentials
        self.clock = clock
        self.state = state or MemoryState()
        self._hasher = PasswordHasher()

    # ---------------------------------------------------------------- metadata
    def discovery(self) -> dict[str, Any]:
        oidc = f"{self.issuer}/protocol/openid-connect"
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{oidc}/auth",
            "token_endpoint": f"{oidc}/token",
            "userinfo_endpoint": f"{oidc}/userinfo",
            "end_session_endpoint": f"{oidc}/logout",
            "revocation_endpoint": f"{oidc}/revoke",
            "jwks_uri": f"{oidc}/certs",
            "grant_types_supported": ["password", "refresh_token", "client_credentials"],
            "response_types_supported": ["none"],  # no browser flow in the stand-in
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "scopes_supported": ["openid", *(s.name for s in self.realm.client_scopes)],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "jti", "azp", "sid", "typ",
                                 "realm_access", "tenant", "preferred_username", "email", "scope"],
            "code_challenge_methods_supported": ["S256"],
            "seclab_stand_in": True,
            "service_documentation": "seclab stand-in issuer, NOT Keycloak: see docs/identity.md",
        }  # fmt: skip

    def jwks(self) -> dict[str, Any]:
        return self.keys.jwks()

    # ---------------------------------------------------------------- events
    def event(self, kind: str, *, client_id: str | None = None, user: User | None = None,
              error: str | None = None, **details: Any) -> None:
        """Keycloak-style login events (type names as in the realm's enabledEventTypes), kept and logged."""
        ev: dict[str, Any] = {"time": int(self.clock() * 1000), "type": kind, "realmId": self.realm.realm,
                              "clientId": client_id, "userId": user.id if user else None}
        if error:
            ev["error"] = error
        if details:
            ev["details"] = details
        self.state.events.append(ev)
        log.info(json.dumps({"event.action": kind, "seclab.idp": ev}))

    # ---------------------------------------------------------------- clients
    def authenticate_client(self, form: Mapping[str, str], authorization: str | None) -> Client:
        """RFC 6749 2.3.1: client_secret_basic or client_secret_post; public clients send only client_id."""
        client_id, secret = form.get("client_id"), form.get("client_secret")
        basic = authorization is not None and authorization.lower().startswith("basic ")
        if basic:
            try:
                raw = base64.b64decode(authorization[6:].strip(), validate=True).decode()  # type: ignore[index]
                cid, _, sec = raw.partition(":")
            except (ValueError, UnicodeDecodeError):
                raise self._invalid_client(basic) from None
            if client_id and client_id != unquote(cid):
                raise OAuthError(400, "invalid_request", "client_id differs between header and body")
            client_id, secret = unquote(cid), unquote(sec)
        if not client_id:
            raise OAuthError(400, "invalid_client", "Missing parameter: client_id")
        client = self.realm.client(client_id)
        if client is None or not client.enabled or client.bearer_only:
            raise self._invalid_client(basic)
        if not client.public:
            expected = self.credentials.clients.get(client_id)
            given = _digest(secret) if secret else ""
            if not expected or not hmac.compare_digest(expected, given):
                self.event("CLIENT_LOGIN_ERROR", client_id=client_id, error="invalid_client_credentials")
                raise self._invalid_client(basic)
        return client

    @staticmethod
    def _invalid_client(basic: bool) -> OAuthError:
        headers = {"WWW-Authenticate": 'Basic realm="seclab"'} if basic else {}
        return OAuthError(401, "invalid_client", "Invalid client or Invalid client credentials", headers)

    # ---------------------------------------------------------------- tokens
    async def token(self, form: Mapping[str, str], authorization: str | None = None) -> dict[str, Any]:
        grant = form.get("grant_type")
        if not grant:
            raise OAuthError(400, "invalid_request", "Missing form parameter: grant_type")
        if grant not in ("password", "refresh_token", "client_credentials"):
            raise OAuthError(400, "unsupported_grant_type", "Unsupported grant_type")
        client = self.authenticate_client(form, authorization)
        if grant == "password":
            return await self._password_grant(client, form)
        if grant == "refresh_token":
            return self._refresh_grant(client, form)
        return self._client_credentials_grant(client, form)

    async def _password_grant(self, client: Client, form: Mapping[str, str]) -> dict[str, Any]:
        if not client.direct_grants:
            raise OAuthError(400, "unauthorized_client", "Client not allowed for direct access grants")
        username, password = form.get("username", ""), form.get("password", "")
        if not username:
            raise OAuthError(401, "invalid_request", "Missing parameter: username")
        user = self.realm.user(username)
        key = username.lower()
        lock = self.state.locks.setdefault(key, asyncio.Lock())
        # One attempt per user at a time: parallel guesses cannot all pass the lockout check
        # before the first failure is counted (ASVS V2.2.1; Keycloak waits on its brute-force queue).
        async with lock:
            now = self.clock()
            stored = self.credentials.users.get(key) if user else None
            # Verify even when the user is unknown or locked: the answer time does not tell (ASVS V2.2.x).
            ok = await asyncio.to_thread(self._verify, stored or _DUMMY_HASH, password)
            if user is None or stored is None:
                self.event("LOGIN_ERROR", client_id=client.client_id, error="user_not_found", username=key)
                raise OAuthError(401, "invalid_grant", INVALID_USER)
            if not user.enabled:
                self.event("LOGIN_ERROR", client_id=client.client_id, user=user, error="user_disabled")
                raise OAuthError(400, "invalid_grant", "Account disabled")
            if self._locked(key, now):
                self.event("LOGIN_ERROR", client_id=client.client_id, user=user, error="user_temporarily_disabled")
                raise OAuthError(401, "invalid_grant", INVALID_USER)
            if not ok:
                self._failed(key, now, user, client)
                raise OAuthError(401, "invalid_grant", INVALID_USER)
            if "lab-admin" in user.realm_roles:
                self._check_otp(key, now, user, client, form.get("totp", ""))
            # The export is rendered without secrets here; an OTP seed from provisioning is what
            # Keycloak's import gets as an OTP credential, so CONFIGURE_TOTP is then already done.
            pending = [a for a in user.required_actions if not (a == "CONFIGURE_TOTP" and key in self.credentials.otp)]
            if pending:
                self.event("LOGIN_ERROR", client_id=client.client_id, user=user, error="resolve_required_actions")
                raise OAuthError(400, "invalid_grant", "Account is not fully set up")
            self.state.failures.pop(key, None)  # success resets the failure count (Keycloak does the same)
        session = self._new_session(user, client, form.get("scope", ""), now)
        self.event("LOGIN", client_id=client.client_id, user=user, grant_type="password")
        return self._issue(session, client, now, with_refresh=client.use_refresh_tokens)

    def _check_otp(self, key: str, now: float, user: User, client: Client, code: str) -> None:
        """The realm's conditional OTP step for lab-admin on the direct grant (seclab-direct-grant flow)."""
        seed = self.credentials.otp.get(key)
        if seed is None:
            self.event("LOGIN_ERROR", client_id=client.client_id, user=user, error="otp_not_configured")
            raise OAuthError(400, "invalid_grant", "Account is not fully set up")
        r = self.realm
        step = totp.matching_step(seed, code, now, period=r.otp_period, digits=r.otp_digits,
                                  algorithm=r.otp_algorithm, look_around=r.otp_look_ahead)
        if step is None or step <= self.state.otp_last_step.get(key, -1):  # a code is used once (V2.8.4)
            self._failed(key, now, user, client, error="invalid_user_credentials_otp")
            raise OAuthError(401, "invalid_grant", INVALID_USER)
        self.state.otp_last_step[key] = step

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    def _locked(self, key: str, now: float) -> bool:
        f = self.state.failures.get(key)
        return bool(self.realm.brute_force_protected and f and now < f.not_before)

    def lockout_remaining(self, username: str) -> float:
        """Seconds until the user may try again (0: not locked). For `lab status` and the tests."""
        f = self.state.failures.get(username.lower())
        return max(0.0, f.not_before - self.clock()) if f else 0.0

    def _failed(self, key: str, now: float, user: User, client: Client,
                error: str = "invalid_user_credentials") -> None:
        """Keycloak's DefaultBruteForceProtector.failure(): waits grow by waitIncrement per failureFactor."""
        self.event("LOGIN_ERROR", client_id=client.client_id, user=user, error=error)
        r = self.realm
        if not r.brute_force_protected:
            return
        f = self.state.failures.setdefault(key, Failures())
        delta = now - f.last if f.last else 0.0
        if f.last and delta > r.max_delta_time:
            f.count = 0  # failures older than maxDeltaTimeSeconds are forgotten
        f.count += 1
        wait = r.wait_increment * (f.count // r.failure_factor)
        if wait == 0 and f.last and delta * 1000 < r.quick_login_check_ms:
            wait = r.minimum_quick_login_wait  # two failures within quickLoginCheckMilliSeconds
        f.last = now
        if wait > 0:
            f.not_before = now + min(r.max_failure_wait, wait)
            if f.count >= r.failure_factor:
                self.event("USER_DISABLED_BY_TEMPORARY_LOCKOUT", client_id=client.client_id, user=user,
                           failures=f.count, wait_seconds=min(r.max_failure_wait, wait))

    def _new_session(self, user: User, client: Client, scope: str, now: float) -> Session:
        session = Session(sid=str(uuid.uuid4()), user=user, client_id=client.client_id, scope=scope,
                          started=now, last_seen=now)
        self.state.sessions[session.sid] = session
        return session

    def _session_alive(self, s: Session, now: float) -> bool:
        r = self.realm
        return s.active and now <= s.last_seen + r.sso_idle and now <= s.started + r.sso_max

    def _refresh_grant(self, client: Client, form: Mapping[str, str]) -> dict[str, Any]:
        token = form.get("refresh_token")
        if not token:
            raise OAuthError(400, "invalid_request", "Missing parameter: refresh_token")
        now = self.clock()
        rec = self.state.refresh.get(_digest(token))
        if rec is None:
            self.event("REFRESH_TOKEN_ERROR", client_id=client.client_id, error="invalid_token")
            raise OAuthError(400, "invalid_grant", "Invalid refresh token")
        if rec.client_id != client.client_id:
            self.event("REFRESH_TOKEN_ERROR", client_id=client.client_id, error="invalid_client")
            raise OAuthError(400, "invalid_grant", "Invalid refresh token. Token client and authorized client don't match")
        session = self.state.sessions.get(rec.sid)
        if rec.used and self.realm.revoke_refresh_token:
            # Replay of a rotated refresh token: someone holds a copy. End the whole session (RFC 9700 4.14.2).
            if session is not None:
                session.active = False
            self._drop_session_tokens(rec.sid)
            self.event("REFRESH_TOKEN_ERROR", client_id=client.client_id,
                       user=session.user if session else None, error="refresh_token_reused", session=rec.sid)
            raise OAuthError(400, "invalid_grant", "Maximum allowed refresh token reuse exceeded")
        if session is None or not self._session_alive(session, now) or now > rec.expires:
            self.event("REFRESH_TOKEN_ERROR", client_id=client.client_id, error="invalid_token")
            raise OAuthError(400, "invalid_grant", "Session not active")
        if self.realm.revoke_refresh_token:
            rec.used = True
        session.last_seen = now
        self.event("REFRESH_TOKEN", client_id=client.client_id, user=session.user)
        return self._issue(session, client, now, with_refresh=True)

    def _client_credentials_grant(self, client: Client, form: Mapping[str, str]) -> dict[str, Any]:
        if client.public or not client.service_accounts:
            raise OAuthError(401, "unauthorized_client", "Client not enabled to retrieve service account")
        user = self.realm.service_account(client.client_id)
        if user is None:
            raise OAuthError(401, "unauthorized_client", "Client not enabled to retrieve service account")
        now = self.clock()
        session = self._new_session(user, client, form.get("scope", ""), now)
        self.event("CLIENT_LOGIN", client_id=client.client_id, user=user, grant_type="client_credentials")
        # RFC 6749 4.4.3: no refresh token for client_credentials (Keycloak's default, use.refresh.tokens=false).
        return self._issue(session, client, now, with_refresh=False)

    # ---------------------------------------------------------------- claims
    def _claims(self, session: Session, client: Client, now: float, token: str) -> dict[str, Any]:
        """Claims from the client's default scopes' protocol mappers, as Keycloak computes them."""
        user = session.user
        allowed = self.realm.scoped_roles(client)
        roles = [r for r in user.realm_roles if allowed is None or r in allowed]
        claims: dict[str, Any] = {}
        audiences: list[str] = []
        scope_names: list[str] = ["openid"] if "openid" in session.scope.split() else []
        mappers = list(client.protocol_mappers)
        for name in client.default_scopes:
            scope = self.realm.scope(name)
            if scope is None:
                continue
            mappers.extend(scope.protocol_mappers)
            if scope.attributes.get("include.in.token.scope", "true") == "true":
                scope_names.append(scope.name)
        for m in mappers:
            kind, cfg = m.protocol_mapper, m.config
            if kind == "oidc-audience-mapper" and m.to(token):
                audiences.append(cfg.get("included.custom.audience") or cfg["included.client.audience"])
            elif kind == "oidc-sub-mapper" and (m.to(token) or token == "id"):
                claims["sub"] = user.id
            elif kind == "oidc-usermodel-realm-role-mapper" and m.to(token):
                _set_path(claims, cfg["claim.name"], roles)
            elif kind == "oidc-usermodel-attribute-mapper" and m.to(token):
                value = user.attribute(cfg["user.attribute"])
                if value is not None:
                    _set_path(claims, cfg["claim.name"], value)
            elif kind == "oidc-usermodel-property-mapper" and m.to(token):
                value = {"username": user.username, "email": user.email, "firstName": user.first_name,
                         "lastName": user.last_name}.get(cfg["user.attribute"])
                if value:
                    _set_path(claims, cfg["claim.name"], value)
            elif kind == "oidc-usersessionmodel-note-mapper" and m.to(token) and cfg.get("user.session.note") == "AUTH_TIME":
                claims[cfg["claim.name"]] = int(session.started)
        claims.setdefault("sub", user.id)
        claims["_aud"] = audiences
        claims["scope"] = " ".join(scope_names)
        return claims

    def _issue(self, session: Session, client: Client, now: float, *, with_refresh: bool) -> dict[str, Any]:
        r = self.realm
        iat = int(now)
        exp = iat + r.access_token_lifespan
        session_end = min(session.last_seen + r.sso_idle, session.started + r.sso_max)
        exp = min(exp, int(session_end)) if session.user.service_account_client_id is None else exp
        claims = self._claims(session, client, now, "access")
        aud = claims.pop("_aud")
        access = {
            "exp": exp, "iat": iat, "nbf": iat, "jti": str(uuid.uuid4()), "iss": self.issuer,
            **({"aud": aud[0] if len(aud) == 1 else aud} if aud else {}),
            "typ": "Bearer", "azp": client.client_id, "sid": session.sid, **claims,
        }  # fmt: skip
        key = self.keys.signing_key()
        header = {"alg": "RS256", "typ": "JWT", "kid": key.kid}
        body: dict[str, Any] = {
            "access_token": jwt.encode(header, access, key),
            "expires_in": exp - iat,
            "token_type": "Bearer",
            "not-before-policy": 0,
            "session_state": session.sid,
            "scope": access["scope"],
        }
        if "openid" in session.scope.split():
            id_claims = self._claims(session, client, now, "id")
            id_claims.pop("_aud")
            id_claims.pop("scope")
            idt = {"exp": exp, "iat": iat, "jti": str(uuid.uuid4()), "iss": self.issuer, "aud": client.client_id,
                   "typ": "ID", "azp": client.client_id, "sid": session.sid, **id_claims}
            body["id_token"] = jwt.encode(header, idt, key)
        if with_refresh:
            refresh = secrets.token_urlsafe(32)
            self.state.refresh[_digest(refresh)] = RefreshRecord(session.sid, client.client_id, session_end)
            body["refresh_token"] = refresh
            body["refresh_expires_in"] = max(0, int(session_end - now))
        else:
            body["refresh_expires_in"] = 0
        return body

    # ---------------------------------------------------------------- userinfo, logout, revoke
    def validate_access_token(self, token: str) -> dict[str, Any]:
        """Our own access tokens only: pinned RS256, our keys, our issuer, typ Bearer, live session."""
        try:
            tok = jwt.decode(token, self.keys.key_set(), algorithms=["RS256"])
            JWTClaimsRegistry(now=int(self.clock()), leeway=0, iss={"essential": True, "value": self.issuer},
                              exp={"essential": True}).validate(tok.claims)
        except (JoseError, ValueError) as exc:
            raise OAuthError(401, "invalid_token", "Token verification failed",
                             {"WWW-Authenticate": 'Bearer realm="seclab", error="invalid_token"'}) from exc
        claims = tok.claims
        s = self.state.sessions.get(claims.get("sid", ""))
        if (claims.get("typ") != "Bearer" or claims.get("jti") in self.state.revoked_jti or s is None
                or not self._session_alive(s, self.clock())):
            raise OAuthError(401, "invalid_token", "Token is not active",
                             {"WWW-Authenticate": 'Bearer realm="seclab", error="invalid_token"'})
        return claims

    def userinfo(self, authorization: str | None) -> dict[str, Any]:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise OAuthError(401, "invalid_token", "Missing bearer token",
                             {"WWW-Authenticate": 'Bearer realm="seclab"'})
        claims = self.validate_access_token(authorization[7:].strip())
        session = self.state.sessions[claims["sid"]]
        client = self.realm.client(claims["azp"])
        assert client is not None
        info = self._claims(session, client, self.clock(), "userinfo")
        info.pop("_aud")
        info.pop("scope")
        return info

    def _drop_session_tokens(self, sid: str) -> None:
        for digest in [d for d, rec in self.state.refresh.items() if rec.sid == sid]:
            del self.state.refresh[digest]

    def logout(self, form: Mapping[str, str], authorization: str | None) -> None:
        """Back-channel logout with the refresh token, as Keycloak's POST /logout (answers 204)."""
        client = self.authenticate_client(form, authorization)
        token = form.get("refresh_token")
        if not token:
            raise OAuthError(400, "invalid_request", "No refresh token")
        rec = self.state.refresh.get(_digest(token))
        if rec is None or rec.client_id != client.client_id:
            raise OAuthError(400, "invalid_grant", "Invalid refresh token")
        session = self.state.sessions.get(rec.sid)
        if session is not None:
            session.active = False
            self.event("LOGOUT", client_id=client.client_id, user=session.user)
        self._drop_session_tokens(rec.sid)

    def revoke(self, form: Mapping[str, str], authorization: str | None) -> None:
        """RFC 7009: a refresh token ends its session; an access token's jti is refused from now on."""
        client = self.authenticate_client(form, authorization)
        token = form.get("token")
        if not token:
            raise OAuthError(400, "invalid_request", "Token not provided")
        rec = self.state.refresh.get(_digest(token))
        if rec is not None:
            if rec.client_id != client.client_id:
                raise OAuthError(400, "unauthorized_client", "Unmatching clients")
            session = self.state.sessions.get(rec.sid)
            if session is not None:
                session.active = False
                self.event("REVOKE_GRANT", client_id=client.client_id, user=session.user)
            self._drop_session_tokens(rec.sid)
            return
        try:
            claims = jwt.decode(token, self.keys.key_set(), algorithms=["RS256"]).claims
        except (JoseError, ValueError):
            return  # RFC 7009 2.2: an invalid or unknown token is answered 200 all the same
        if claims.get("azp") != client.client_id:
            raise OAuthError(400, "unauthorized_client", "Unmatching clients")
        self.state.revoked_jti[str(claims.get("jti"))] = float(claims.get("exp", 0))
        self.event("REVOKE_GRANT", client_id=client.client_id, token="access")


def _set_path(claims: dict[str, Any], path: str, value: Any) -> None:
    """Keycloak's dotted claim names: `realm_access.roles` -> {"realm_access": {"roles": ...}}."""
    parts = path.split(".")
    node = claims
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
