"""TOTP (RFC 6238) for the lab-admin second factor, with Keycloak's OTP policy and secret format.

Keycloak stores the OTP secret as a plain string and gives authenticator apps base32(secret);
`code(secret.encode(), t)` therefore yields the same codes as Keycloak. HMAC comes from the standard
library; codes are compared in constant time and each time step is accepted once per user.
Ref: RFC 6238, RFC 4226 5.3, ASVS 4.0.3 V2.8.1, V2.8.4.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string
import struct

_ALGS = {"HmacSHA1": hashlib.sha1, "HmacSHA256": hashlib.sha256, "HmacSHA512": hashlib.sha512}


def new_secret(length: int = 20) -> str:
    """A Keycloak-style OTP secret (alphanumeric, 20 characters = ~119 bits)."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def otpauth_key(secret: str) -> str:
    """The base32 key an authenticator app is given (what Keycloak puts in its QR code)."""
    return base64.b32encode(secret.encode()).decode().rstrip("=")


def code(secret: str, step: int, *, digits: int = 6, algorithm: str = "HmacSHA1") -> str:
    mac = hmac.new(secret.encode(), struct.pack(">Q", step), _ALGS[algorithm]).digest()
    offset = mac[-1] & 0x0F
    value = (struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF) % (10**digits)
    return str(value).zfill(digits)


def matching_step(secret: str, candidate: str, now: float, *, period: int = 30, digits: int = 6,
                  algorithm: str = "HmacSHA1", look_around: int = 1) -> int | None:
    """The time step `candidate` belongs to (within +-look_around steps), or None."""
    if not candidate.isdigit() or len(candidate) != digits:
        return None
    current = int(now // period)
    found = None
    for step in range(current - look_around, current + look_around + 1):
        if hmac.compare_digest(code(secret, step, digits=digits, algorithm=algorithm), candidate):
            found = step
    return found
