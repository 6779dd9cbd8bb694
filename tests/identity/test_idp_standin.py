"""The stand-in issuer in-process: Keycloak's paths, claim shapes, grants, rotation, lockout, lifetimes."""

from __future__ import annotations

import base64

from joserfc import jwt
from joserfc.jwk import KeySet

from seclab.realm import PROBE_CLIENT_ID, user_id

from .conftest import BASE, REALM_PATH, StandIn

ISS = f"{BASE}/realms/seclab"


def _keyset(standin: StandIn) -> KeySet:
    return KeySet.import_key_set(standin.issuer.jwks())  # type: ignore[arg-type]  # a JWKS dict is its serialization


def _claims(standin: StandIn, token: str) -> dict:
    return dict(jwt.decode(token, _keyset(standin), algorithms=["RS256"]).claims)


async def test_discovery_and_jwks_shape(standin: StandIn) -> None:
    r = await standin.client.get("/realms/seclab/.well-known/openid-configuration")
    assert r.status_code == 200
    meta = r.json()
    assert meta["issuer"] == ISS
    assert meta["jwks_uri"] == f"{ISS}/protocol/openid-connect/certs"
    assert meta["token_endpoint"] == f"{ISS}/protocol/openid-connect/token"
    assert meta["revocation_endpoint"] == f"{ISS}/protocol/openid-connect/revoke"
    assert meta["id_token_signing_alg_values_supported"] == ["RS256"]
    assert meta["seclab_stand_in"] is True
    assert r.headers["x-seclab-idp"] == "stand-in"
    jwks = (await standin.client.get(f"{REALM_PATH}/certs")).json()
    assert len(jwks["keys"]) == 1
    key = jwks["keys"][0]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig" and key["kid"]
    assert not {"d", "p", "q", "dp", "dq", "qi"} & key.keys(), "private members must never be published"
    assert (await standin.client.get("/realms/other/.well-known/openid-configuration")).status_code == 404


async def test_password_grant_gives_keycloak_claims(standin: StandIn) -> None:
    r = await standin.password_grant("carol")
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300
    assert body["refresh_token"] and body["id_token"]
    header = jwt.decode(body["access_token"], _keyset(standin)).header
    assert header["alg"] == "RS256" and header["kid"] == standin.keys.signing_key().kid
    c = _claims(standin, body["access_token"])
    assert c["iss"] == ISS
    assert c["aud"] == "seclab-api"
    assert c["azp"] == "seclab-cli"
    assert c["typ"] == "Bearer"
    assert c["sub"] == user_id("seclab", "carol")
    assert c["preferred_username"] == "carol" and c["email"] == "carol@acme.example"
    assert c["tenant"] == "acme"
    assert sorted(c["realm_access"]["roles"]) == ["tenant-admin", "user"]  # not default-roles-seclab
    assert c["exp"] - c["iat"] == 300 and c["nbf"] == c["iat"] == int(standin.clock())
    assert c["sid"] == body["session_state"] and c["jti"]
    assert "seclab-claims" in c["scope"].split() and "openid" in c["scope"].split()
    idt = _claims(standin, body["id_token"])
    assert idt["aud"] == "seclab-cli" and idt["typ"] == "ID" and "realm_access" not in idt


async def test_wrong_password_and_unknown_user_look_the_same(standin: StandIn) -> None:
    bad = await standin.password_grant("alice", "Wrong-password-1")
    ghost = await standin.password_grant("alice", "x") if False else await standin.client.post(
        f"{REALM_PATH}/token", data={"grant_type": "password", "client_id": "seclab-cli",
                                     "username": "mallory", "password": "Wrong-password-1"})
    assert bad.status_code == ghost.status_code == 401
    assert bad.json() == ghost.json() == {"error": "invalid_grant", "error_description": "Invalid user credentials"}


async def test_token_lifetime_equals_the_realm(standin: StandIn) -> None:
    body = (await standin.password_grant("alice")).json()
    c = _claims(standin, body["access_token"])
    assert c["exp"] - c["iat"] == standin.issuer.realm.access_token_lifespan == standin.lab.identity.access_token_lifetime_s
    assert body["refresh_expires_in"] == standin.lab.identity.sso_idle_timeout_s


async def test_refresh_rotates_and_replay_ends_the_session(standin: StandIn) -> None:
    first = (await standin.password_grant("alice")).json()
    standin.clock.advance(10)
    r = await standin.client.post(f"{REALM_PATH}/token", data={
        "grant_type": "refresh_token", "client_id": "seclab-cli", "refresh_token": first["refresh_token"]})
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert _claims(standin, second["access_token"])["sid"] == first["session_state"]
    # The attacker replays the old refresh token: refused, and the session is gone for everybody.
    replay = await standin.client.post(f"{REALM_PATH}/token", data={
        "grant_type": "refresh_token", "client_id": "seclab-cli", "refresh_token": first["refresh_token"]})
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    legit = await standin.client.post(f"{REALM_PATH}/token", data={
        "grant_type": "refresh_token", "client_id": "seclab-cli", "refresh_token": second["refresh_token"]})
    assert legit.status_code == 400 and legit.json()["error"] == "invalid_grant"
    assert any(e.get("error") == "refresh_token_reused" for e in standin.issuer.state.events)
    ui = await standin.client.get(f"{REALM_PATH}/userinfo",
                                  headers={"Authorization": f"Bearer {second['access_token']}"})
    assert ui.status_code == 401 and "invalid_token" in ui.headers["www-authenticate"]


async def test_refresh_token_of_another_client_and_idle_timeout(standin: StandIn) -> None:
    body = (await standin.password_grant("alice")).json()
    other = await standin.client.post(f"{REALM_PATH}/token", data={
        "grant_type": "refresh_token", "client_id": "seclab-web", "refresh_token": body["refresh_token"]})
    assert other.status_code == 400 and other.json()["error"] == "invalid_grant"
    standin.clock.advance(standin.lab.identity.sso_idle_timeout_s + 1)
    idle = await standin.client.post(f"{REALM_PATH}/token", data={
        "grant_type": "refresh_token", "client_id": "seclab-cli", "refresh_token": body["refresh_token"]})
    assert idle.status_code == 400 and idle.json()["error_description"] == "Session not active"


async def test_client_credentials(standin: StandIn) -> None:
    basic = base64.b64encode(f"{PROBE_CLIENT_ID}:{standin.probe_secret()}".encode()).decode()
    r = await standin.client.post(f"{REALM_PATH}/token", data={"grant_type": "client_credentials"},
                                  headers={"Authorization": f"Basic {basic}"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert "refresh_token" not in body
    c = _claims(standin, body["access_token"])
    assert c["azp"] == PROBE_CLIENT_ID and c["aud"] == "seclab-api"
    assert c["preferred_username"] == f"service-account-{PROBE_CLIENT_ID}"
    assert c["realm_access"]["roles"] == [] and "tenant" not in c
    wrong = await standin.client.post(f"{REALM_PATH}/token", data={
        "grant_type": "client_credentials", "client_id": PROBE_CLIENT_ID, "client_secret": "guess"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    public = await standin.client.post(f"{REALM_PATH}/token", data={
        "grant_type": "client_credentials", "client_id": "seclab-cli"})
    assert public.status_code == 401 and public.json()["error"] == "unauthorized_client"


async def test_grants_a_client_does_not_have(standin: StandIn) -> None:
    web = await standin.client.post(f"{REALM_PATH}/token", data={
        "grant_type": "password", "client_id": "seclab-web", "username": "alice", "password": standin.passwords["alice"]})
    assert web.status_code == 400 and web.json()["error"] == "unauthorized_client"
    api = await standin.client.post(f"{REALM_PATH}/token", data={
        "grant_type": "password", "client_id": "seclab-api", "username": "alice", "password": standin.passwords["alice"]})
    assert api.status_code == 401 and api.json()["error"] == "invalid_client"
    implicit = await standin.client.post(f"{REALM_PATH}/token", data={"grant_type": "implicit", "client_id": "seclab-cli"})
    assert implicit.status_code == 400 and implicit.json()["error"] == "unsupported_grant_type"
    twice = await standin.client.post(f"{REALM_PATH}/token", content="grant_type=password&username=a&username=b",
                                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert twice.status_code == 400 and twice.json()["error"] == "invalid_request"


async def test_revocation_of_refresh_and_access_tokens(standin: StandIn) -> None:
    body = (await standin.password_grant("bob")).json()
    auth = {"Authorization": f"Bearer {body['access_token']}"}
    assert (await standin.client.get(f"{REALM_PATH}/userinfo", headers=auth)).json()["tenant"] == "globex"
    r = await standin.client.post(f"{REALM_PATH}/revoke", data={
        "client_id": "seclab-cli", "token": body["access_token"], "token_type_hint": "access_token"})
    assert r.status_code == 200
    assert (await standin.client.get(f"{REALM_PATH}/userinfo", headers=auth)).status_code == 401
    r = await standin.client.post(f"{REALM_PATH}/revoke", data={"client_id": "seclab-cli", "token": body["refresh_token"]})
    assert r.status_code == 200
    again = await standin.client.post(f"{REALM_PATH}/token", data={
        "grant_type": "refresh_token", "client_id": "seclab-cli", "refresh_token": body["refresh_token"]})
    assert again.status_code == 400
    unknown = await standin.client.post(f"{REALM_PATH}/revoke", data={"client_id": "seclab-cli", "token": "nonsense"})
    assert unknown.status_code == 200  # RFC 7009 2.2


async def test_logout_ends_the_session(standin: StandIn) -> None:
    body = (await standin.password_grant("alice")).json()
    r = await standin.client.post(f"{REALM_PATH}/logout", data={"client_id": "seclab-cli", "refresh_token": body["refresh_token"]})
    assert r.status_code == 204
    ui = await standin.client.get(f"{REALM_PATH}/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert ui.status_code == 401


async def test_key_rotation_keeps_old_tokens_valid(standin: StandIn) -> None:
    old = (await standin.password_grant("alice")).json()["access_token"]
    old_kid = standin.keys.signing_key().kid
    new_kid = standin.keys.rotate(keep=2)
    jwks = (await standin.client.get(f"{REALM_PATH}/certs")).json()
    assert {k["kid"] for k in jwks["keys"]} == {old_kid, new_kid}
    new = (await standin.password_grant("alice")).json()["access_token"]
    keyset = KeySet.import_key_set(jwks)
    assert jwt.decode(new, keyset).header["kid"] == new_kid
    assert jwt.decode(old, keyset).claims["preferred_username"] == "alice"  # still verifies
    standin.keys.rotate(keep=2)  # the next rotation retires the old key
    kids = {k["kid"] for k in (await standin.client.get(f"{REALM_PATH}/certs")).json()["keys"]}
    assert old_kid not in kids and new_kid in kids
    assert not (standin.keys.directory / f"{old_kid}.pem").exists()
    assert all((p.stat().st_mode & 0o777) == 0o600 for p in standin.keys.directory.glob("*.pem"))


async def test_brute_force_lockout_as_the_realm_says(standin: StandIn) -> None:
    realm = standin.issuer.realm
    assert realm.failure_factor == standin.lab.identity.brute_force_max_failures
    for _ in range(realm.failure_factor):
        standin.clock.advance(2)  # slower than the quick-login check
        r = await standin.password_grant("alice", "Wrong-password-1")
        assert r.status_code == 401
    # Locked: even the right password is refused, with the same answer as a wrong one.
    standin.clock.advance(1)
    locked = await standin.password_grant("alice")
    assert locked.status_code == 401
    assert locked.json() == {"error": "invalid_grant", "error_description": "Invalid user credentials"}
    assert any(e["type"] == "USER_DISABLED_BY_TEMPORARY_LOCKOUT" for e in standin.issuer.state.events)
    wait = standin.issuer.lockout_remaining("alice")
    assert 0 < wait <= realm.wait_increment
    # The lockout ends on time, and a success resets the count.
    standin.clock.advance(wait + 0.1)
    assert (await standin.password_grant("alice")).status_code == 200
    assert "alice" not in standin.issuer.state.failures


async def test_brute_force_waits_increase_and_are_capped(standin: StandIn) -> None:
    realm = standin.issuer.realm
    waits = []
    for _ in range(3):
        for _ in range(realm.failure_factor):
            standin.clock.advance(standin.issuer.lockout_remaining("bob") + 2)
            await standin.password_grant("bob", "Wrong-password-1")
        waits.append(standin.issuer.lockout_remaining("bob"))
    assert waits[0] < waits[1] < waits[2] <= realm.max_failure_wait


async def test_quick_successive_failures_lock_at_once(standin: StandIn) -> None:
    await standin.password_grant("bob", "Wrong-password-1")
    standin.clock.advance(0.2)
    await standin.password_grant("bob", "Wrong-password-1")
    assert standin.issuer.lockout_remaining("bob") > 0  # quickLoginCheckMilliSeconds, as Keycloak


async def test_parallel_guesses_cannot_outrun_the_lockout(standin: StandIn) -> None:
    import asyncio

    attempts = [standin.password_grant("carol", f"Wrong-password-{i}") for i in range(12)]
    await asyncio.gather(*attempts)
    assert standin.issuer.state.failures["carol"].count <= 12
    assert (await standin.password_grant("carol")).status_code == 401  # locked, right password or not


async def test_lab_admin_needs_a_one_time_code(standin: StandIn) -> None:
    pw = standin.passwords["admin"]
    assert (await standin.password_grant("admin", pw)).status_code == 401  # no totp
    assert (await standin.password_grant("admin", pw, totp="000000")).status_code == 401
    standin.clock.advance(60)
    code = standin.totp("admin")
    ok = await standin.password_grant("admin", pw, totp=code)
    assert ok.status_code == 200, ok.text
    assert _claims(standin, ok.json()["access_token"])["realm_access"]["roles"] == ["lab-admin"]
    standin.clock.advance(2)
    reuse = await standin.password_grant("admin", pw, totp=code)
    assert reuse.status_code == 401  # a code is accepted once (ASVS V2.8.4)
