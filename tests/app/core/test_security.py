"""JWT validation with minted tokens: every rejection path must reject, the valid token must pass."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from joserfc.jwk import RSAKey

from app.core.security import AuthError, JwksCache, TokenValidator
from tests.conftest import AUDIENCE, ISSUER, JWKS_URL, FakeIssuer, claims_for, mint


@pytest.fixture
def issuer(signing_key: RSAKey) -> FakeIssuer:
    return FakeIssuer([signing_key])


@pytest.fixture
def validator(issuer: FakeIssuer) -> TokenValidator:
    return TokenValidator(JwksCache(issuer.client(), JWKS_URL, min_refresh_s=30), ISSUER, AUDIENCE, leeway_s=30)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


async def test_valid_token_gives_principal(validator: TokenValidator, signing_key: RSAKey) -> None:
    token = mint(signing_key, claims_for("u1", ["user", "offline_access"], "acme"))
    p = await validator.validate(token)
    assert (p.sub, p.tenant, p.username) == ("u1", "acme", "u1")
    assert p.roles == frozenset({"user", "offline_access"})


async def test_single_string_audience_accepted(validator: TokenValidator, signing_key: RSAKey) -> None:
    token = mint(signing_key, claims_for("u1", ["user"], "acme", aud=AUDIENCE))
    assert (await validator.validate(token)).sub == "u1"


async def test_alg_none_rejected(validator: TokenValidator, signing_key: RSAKey) -> None:
    claims = claims_for("u1", ["user"], "acme")
    token = f"{_b64({'alg': 'none', 'kid': signing_key.kid})}.{_b64(claims)}."
    with pytest.raises(AuthError):
        await validator.validate(token)


async def test_hs256_with_public_key_rejected(validator: TokenValidator, signing_key: RSAKey) -> None:
    """The classic confusion: HMAC-sign with the (public) RSA key as the secret."""
    public_pem = signing_key.as_pem(private=False)  # joserfc refuses this as an oct key: sign by hand
    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT', 'kid': signing_key.kid})}.{_b64(claims_for('u1', ['lab-admin']))}"
    sig = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    token = signing_input + "." + base64.urlsafe_b64encode(sig).decode().rstrip("=")
    with pytest.raises(AuthError):
        await validator.validate(token)


async def test_tampered_payload_rejected(validator: TokenValidator, signing_key: RSAKey) -> None:
    token = mint(signing_key, claims_for("u1", ["user"], "acme"))
    header, _, sig = token.split(".")
    forged = _b64(claims_for("u1", ["user", "lab-admin"], "globex"))
    with pytest.raises(AuthError):
        await validator.validate(f"{header}.{forged}.{sig}")


async def test_unknown_kid_rejected_and_refetch_throttled(
    validator: TokenValidator, issuer: FakeIssuer, signing_key: RSAKey, other_key: RSAKey
) -> None:
    await validator.validate(mint(signing_key, claims_for("u1", ["user"], "acme")))
    assert issuer.fetches == 1
    for _ in range(20):
        with pytest.raises(AuthError):
            await validator.validate(mint(other_key, claims_for("u1", ["user"], "acme")))
    assert issuer.fetches == 1, "an unknown kid inside the interval must not refetch the JWKS"


async def test_unknown_kid_refetches_after_interval(issuer: FakeIssuer, signing_key: RSAKey) -> None:
    """Key rotation: a new kid is found by one refetch once the interval has passed."""
    v = TokenValidator(JwksCache(issuer.client(), JWKS_URL, min_refresh_s=0), ISSUER, AUDIENCE)
    await v.validate(mint(signing_key, claims_for("u1", ["user"], "acme")))
    rotated = RSAKey.generate_key(2048, parameters={"kid": "rotated"}, private=True)
    issuer.keys.append(rotated)
    assert (await v.validate(mint(rotated, claims_for("u2", ["user"], "acme")))).sub == "u2"
    assert issuer.fetches == 2


async def test_forged_signature_same_kid_rejected(validator: TokenValidator, other_key: RSAKey,
                                                  signing_key: RSAKey) -> None:
    token = mint(other_key, claims_for("u1", ["user"], "acme"), header={"kid": signing_key.kid})
    with pytest.raises(AuthError):
        await validator.validate(token)


@pytest.mark.parametrize(
    "override",
    [
        {"exp": ("now", -31)},
        {"nbf": ("now", 120)},
        {"iss": "http://evil.test/realms/seclab"},
        {"aud": "another-api"},
        {"aud": ["account"]},
        {"sub": None},
        {"exp": None},
        {"iss": None},
    ],
    ids=["expired", "nbf-future", "wrong-iss", "wrong-aud", "aud-list-without-us", "no-sub", "no-exp", "no-iss"],
)
async def test_bad_claims_rejected(validator: TokenValidator, signing_key: RSAKey, override: dict[str, Any]) -> None:
    claims = claims_for("u1", ["user"], "acme")
    for k, v in override.items():
        if v is None:
            claims.pop(k)
        elif isinstance(v, tuple):  # relative to when the test runs, not to when it was collected
            claims[k] = int(time.time()) + v[1]
        else:
            claims[k] = v
    with pytest.raises(AuthError):
        await validator.validate(mint(signing_key, claims))


async def test_leeway_accepts_small_clock_skew(validator: TokenValidator, signing_key: RSAKey) -> None:
    now = int(time.time())
    claims = claims_for("u1", ["user"], "acme", nbf=now + 10, exp=now - 10)
    assert (await validator.validate(mint(signing_key, claims))).sub == "u1"


@pytest.mark.parametrize("token", ["", "a.b", "not-a-jwt", "a.b.c", "..", "x" * 9000])
async def test_garbage_rejected(validator: TokenValidator, token: str) -> None:
    with pytest.raises(AuthError):
        await validator.validate(token)
