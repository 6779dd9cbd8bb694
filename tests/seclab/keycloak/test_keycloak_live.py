"""The live Keycloak enforces the realm lab.yml describes: claims, lifetimes, MFA, lockout, rotation.

Every case runs against the Keycloak `./lab up` installed (no stand-in, no mock). Cases that change
an account's state use a throw-away user made through the admin API and deleted afterwards, so the
lab's own users (alice, carol, bob, admin) keep working for the other suites.
"""

from __future__ import annotations

import base64
import json
import ssl
import time
from typing import Any

import httpx
import pytest

from labdef.realm import PROBE_CLIENT_ID
from seclab.keycloak import access

from .conftest import Keycloak, strong_password

pytestmark = pytest.mark.integration  # live: the lab's Keycloak


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


# ------------------------------------------------------------------ discovery, through the edge
def test_discovery_and_jwks_through_the_edge_for_a_scripted_client(kc: Keycloak) -> None:
    """A Python client (python-httpx User-Agent, CRS 913101 at PL2) reads discovery and the JWKS via the edge."""
    ctx = ssl.create_default_context(cafile=str(access.ca_file(kc.lab)))
    with httpx.Client(base_url=kc.lab.edge_url, verify=ctx, timeout=15) as edge:
        r = edge.get(f"/realms/{kc.realm}/.well-known/openid-configuration")
        assert r.status_code == 200, r.text
        meta = r.json()
        assert meta["issuer"] == kc.issuer
        assert meta["token_endpoint"] == f"{kc.issuer}/protocol/openid-connect/token"
        assert "RS256" in meta["id_token_signing_alg_values_supported"]
        jwks = edge.get(f"/realms/{kc.realm}/protocol/openid-connect/certs")
        assert jwks.status_code == 200
        assert any(k["kty"] == "RSA" and k.get("use") == "sig" for k in jwks.json()["keys"])
        # Keycloak's own login form for the web client (authorization code + PKCE S256).
        login = edge.get(f"/realms/{kc.realm}/protocol/openid-connect/auth", params={
            "client_id": "seclab-web", "response_type": "code", "scope": "openid",
            "redirect_uri": kc.lab.identity.redirect_uris[0], "code_challenge_method": "S256",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "state": "s1"})
        assert login.status_code == 200 and 'id="kc-form-login"' in login.text
        # The master realm (Keycloak's own administration) and the admin console are not routed.
        assert edge.get("/realms/master/.well-known/openid-configuration").status_code == 404
        assert edge.get("/admin/master/console/").status_code == 404


# ------------------------------------------------------------------ tokens and claims
def test_password_grant_gives_the_claims_the_api_needs(kc: Keycloak) -> None:
    body = kc.token("carol")
    assert body["token_type"].lower() == "bearer"
    assert body["expires_in"] == kc.lab.identity.access_token_lifetime_s
    c = claims(body["access_token"])
    assert c["iss"] == kc.issuer
    aud = c["aud"] if isinstance(c["aud"], list) else [c["aud"]]
    assert kc.lab.identity.api_audience in aud
    assert c["tenant"] == "acme" and c["preferred_username"] == "carol"
    assert {"user", "tenant-admin"} <= set(c["realm_access"]["roles"])
    assert "lab-admin" not in c["realm_access"]["roles"]
    assert c["exp"] - c["iat"] == kc.lab.identity.access_token_lifetime_s
    assert c["azp"] == kc.lab.identity.cli_client_id


def test_wrong_password_and_unknown_user_look_the_same(kc: Keycloak) -> None:
    name, _ = kc.temp_user(strong_password())
    wrong = kc.password_grant(name, "Wrong-password-123!")
    unknown = kc.password_grant("nobody-" + name, "Wrong-password-123!")
    # Keycloak 26 answers 400 invalid_grant to both (RFC 6749 5.2), with one and the same body.
    assert wrong.status_code == unknown.status_code == 400
    assert wrong.json() == unknown.json() == {"error": "invalid_grant", "error_description": "Invalid user credentials"}


def test_lab_admin_needs_a_one_time_code(kc: Keycloak) -> None:
    """MFA is enforced by Keycloak's direct-grant flow: the password alone is not enough for lab-admin."""
    ok = kc.password_grant("admin")
    assert ok.status_code == 200, ok.text
    assert "lab-admin" in claims(ok.json()["access_token"])["realm_access"]["roles"]
    try:
        time.sleep(1.2)  # slower than the quick-login check (1 s): these two failures must not lock admin
        no_code = kc.password_grant("admin", kc.password("admin"))
        assert no_code.status_code == 400 and no_code.json()["error"] == "invalid_grant"
        time.sleep(1.2)
        wrong = kc.password_grant("admin", kc.password("admin"), totp="000000")
        assert wrong.status_code == 400 and "access_token" not in wrong.json()
    finally:
        uid = kc.admin("GET", f"/{kc.realm}/users", params={"username": "admin", "exact": "true"}).json()[0]["id"]
        kc.admin("DELETE", f"/{kc.realm}/attack-detection/brute-force/users/{uid}")  # the lab's admin stays usable


def test_refresh_rotates_and_a_replayed_refresh_token_is_refused(kc: Keycloak) -> None:
    """revokeRefreshToken + refreshTokenMaxReuse=0 (RFC 9700 4.14.2): each refresh token works once, and
    a replayed one ends the session."""
    first = kc.token("alice")
    r1 = kc.http.post(f"{kc.oidc}/token", data={"grant_type": "refresh_token", "client_id": kc.lab.identity.cli_client_id,
                                                 "refresh_token": first["refresh_token"]})
    assert r1.status_code == 200, r1.text
    assert r1.json()["refresh_token"] != first["refresh_token"]
    replay = kc.http.post(f"{kc.oidc}/token", data={"grant_type": "refresh_token", "client_id": kc.lab.identity.cli_client_id,
                                                     "refresh_token": first["refresh_token"]})
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert "reuse" in replay.json()["error_description"]
    # Reuse detection: the replay ends the client's session, so the legitimate rotated token dies too
    # (a thief and the victim cannot both keep refreshing).
    rotated = kc.http.post(f"{kc.oidc}/token", data={"grant_type": "refresh_token", "client_id": kc.lab.identity.cli_client_id,
                                                      "refresh_token": r1.json()["refresh_token"]})
    assert rotated.status_code == 400 and rotated.json()["error"] == "invalid_grant"


def test_refresh_token_of_another_client_is_refused(kc: Keycloak) -> None:
    first = kc.token("alice")
    r = kc.http.post(f"{kc.oidc}/token", data={"grant_type": "refresh_token", "client_id": "seclab-web",
                                                "refresh_token": first["refresh_token"]})
    assert r.status_code in (400, 401) and r.json()["error"] in ("invalid_grant", "unauthorized_client", "invalid_client")


def test_client_credentials_of_the_probe_give_no_user_role(kc: Keycloak) -> None:
    r = kc.http.post(f"{kc.oidc}/token", data={"grant_type": "client_credentials"},
                     auth=(PROBE_CLIENT_ID, kc.probe_secret()))
    assert r.status_code == 200, r.text
    assert "refresh_token" not in r.json()
    roles = set(claims(r.json()["access_token"]).get("realm_access", {}).get("roles", []))
    assert not roles & {"user", "tenant-admin", "lab-admin"}
    bad = kc.http.post(f"{kc.oidc}/token", data={"grant_type": "client_credentials"}, auth=(PROBE_CLIENT_ID, "wrong"))
    assert bad.status_code == 401


@pytest.mark.parametrize(("client_id", "grant"), [
    ("seclab-web", "password"),             # the browser client has no direct grant
    ("seclab-cli", "client_credentials"),   # a public client has no credentials of its own
    ("seclab-api", "password"),             # the resource server is bearer-only
])  # fmt: skip
def test_grants_a_client_does_not_have(kc: Keycloak, client_id: str, grant: str) -> None:
    data = {"grant_type": grant, "client_id": client_id, "username": "alice", "password": kc.password("alice")}
    r = kc.http.post(f"{kc.oidc}/token", data=data)
    assert r.status_code in (400, 401), r.text
    assert "access_token" not in r.json()


def test_logout_ends_the_session(kc: Keycloak) -> None:
    first = kc.token("bob")
    out = kc.http.post(f"{kc.oidc}/logout", data={"client_id": kc.lab.identity.cli_client_id,
                                                   "refresh_token": first["refresh_token"]})
    assert out.status_code == 204, out.text
    r = kc.http.post(f"{kc.oidc}/token", data={"grant_type": "refresh_token", "client_id": kc.lab.identity.cli_client_id,
                                                "refresh_token": first["refresh_token"]})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_a_weak_password_is_refused_by_the_realm_policy(kc: Keycloak) -> None:
    _, uid = kc.temp_user(strong_password())
    for weak in ("short1!A", "alllowercaseandlong1!", "NoDigitsHere!!xx", "NoSpecial12345678"):
        r = kc.admin("PUT", f"/{kc.realm}/users/{uid}/reset-password",
                     json={"type": "password", "value": weak, "temporary": False})
        assert r.status_code == 400, weak


# ------------------------------------------------------------------ brute force (ASVS 2.2.1)
def test_brute_force_lockout_as_the_realm_says(kc: Keycloak) -> None:
    pw = strong_password()
    name, uid = kc.temp_user(pw)
    for _ in range(kc.lab.identity.brute_force_max_failures):
        assert kc.password_grant(name, "Wrong-password-123!").status_code == 400
    status = kc.admin("GET", f"/{kc.realm}/attack-detection/brute-force/users/{uid}").json()
    assert status["disabled"] is True and status["numFailures"] >= 1
    # Locked: even the right password is refused, and the answer does not tell the attacker why.
    locked = kc.password_grant(name, pw)
    assert locked.status_code in (400, 401) and "access_token" not in locked.json()
    # The lockout is temporary (never permanent: no lockout-DoS); an administrator can clear it.
    assert kc.admin("DELETE", f"/{kc.realm}/attack-detection/brute-force/users/{uid}").status_code == 204
    assert kc.password_grant(name, pw).status_code == 200


def test_brute_force_settings_are_lab_yml_on_the_live_realm(kc: Keycloak) -> None:
    rep = kc.admin("GET", f"/{kc.realm}").json()
    ident = kc.lab.identity
    assert rep["bruteForceProtected"] is True and rep["permanentLockout"] is False
    assert rep["failureFactor"] == ident.brute_force_max_failures
    assert rep["waitIncrementSeconds"] == ident.brute_force_wait_increment_s
    assert rep["maxFailureWaitSeconds"] == ident.brute_force_max_wait_s
    assert rep["revokeRefreshToken"] is True and rep["refreshTokenMaxReuse"] == 0
    assert rep["accessTokenLifespan"] == ident.access_token_lifetime_s
    assert rep["sslRequired"] == "all" and rep["registrationAllowed"] is False
    assert "length(12)" in rep["passwordPolicy"] and "hashAlgorithm(argon2)" in rep["passwordPolicy"]


def test_prometheus_scrapes_keycloaks_metrics(kc: Keycloak) -> None:
    """Keycloak's /metrics (management interface, loopback HTTPS) is a healthy Prometheus target."""
    url = f"http://127.0.0.1:{kc.lab.ports.prometheus}/api/v1/targets"
    deadline = time.monotonic() + 60  # a freshly restarted Keycloak is scraped within one interval
    while True:
        targets = [t for t in httpx.get(url, timeout=10).json()["data"]["activeTargets"]
                   if t["labels"]["job"] == "keycloak"]
        assert len(targets) == 1 and targets[0]["scrapeUrl"].startswith("https://127.0.0.1:")
        if targets[0]["health"] == "up" or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert targets[0]["health"] == "up", targets[0].get("lastError")
    # Keycloak's direct management endpoint needs no edge: it is not routed there (404 at the edge).
    ctx = ssl.create_default_context(cafile=str(access.ca_file(kc.lab)))
    with httpx.Client(base_url=kc.lab.edge_url, verify=ctx, timeout=15) as edge:
        assert edge.get("/metrics").status_code == 404
