"""TOTP (RFC 6238) for the lab-admin second factor, with Keycloak's OTP policy and secret format.

Keycloak stores the OTP secret as a plain string and gives authenticator apps base32(secret);
`code(secret.encode(), t)` therefore yields the same codes as Keycloak. HMAC comes from the standard
library. `./lab token admin` and the identity tests compute the code Keycloak's direct-grant OTP
step demands from lab-admins.
Ref: RFC 6238, RFC 4226 5.3, ASVS 4.0.3 V2.8.1, V2.8.4.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import os
import secrets
import string
import struct
import time
from collections.abc import Callable
from pathlib import Path

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


def fresh_code(seed_file: Path, *, period: int = 30, look_ahead: int = 1,
               now: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> str:
    """A code of a time step never handed out before for this seed (Keycloak accepts each code once).

    The realm accepts steps up to `look_ahead` ahead of now, so up to 1 + look_ahead codes can be had
    per period; beyond that this waits for the next period instead of sending a reused code (a refused
    code counts as a failed login, and two quick failures lock the account: brute-force detection).
    The last step used is kept next to the seed (`<seed>.last`, 0600) under an exclusive lock.
    """
    seed = seed_file.read_text(encoding="utf-8").strip()
    last_file = seed_file.with_name(seed_file.name + ".last")
    fd = os.open(last_file, os.O_RDWR | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            last = int(fh.read().strip() or "-1")
        except ValueError:
            last = -1
        while True:
            current = int(now() // period)
            step = max(current, last + 1)
            if step <= current + look_ahead:
                break
            sleep(period - now() % period + 0.05)
        fh.seek(0)
        fh.truncate()
        fh.write(str(step))
        fh.flush()
    return code(seed, step)
