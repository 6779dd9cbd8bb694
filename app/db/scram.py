"""PostgreSQL SCRAM-SHA-256 verifiers computed client-side.

Why: `CREATE/ALTER ROLE ... PASSWORD '<verifier>'` never puts a clear-text password on the wire or
into the server's statement log (log_statement=ddl) (ASVS 4.0.3 V2.4.1, V7.1.1).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SCRAM_ITERATIONS = 4096


def scram_verifier(password: str, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """PostgreSQL's SCRAM-SHA-256 verifier format (RFC 5802/7677)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = lambda b: base64.b64encode(b).decode()
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def scram_matches(verifier: str | None, password: str) -> bool:
    """Whether an existing verifier was made from `password` (keeps bootstrap idempotent)."""
    if not verifier or not verifier.startswith("SCRAM-SHA-256$"):
        return False
    try:
        head, _keys = verifier[len("SCRAM-SHA-256$"):].split("$", 1)
        iterations_s, salt_b64 = head.split(":", 1)
        expected = scram_verifier(password, base64.b64decode(salt_b64), int(iterations_s))
    except ValueError:
        return False
    return hmac.compare_digest(expected, verifier)
