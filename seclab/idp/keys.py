"""RS256 signing keys of the stand-in issuer, with rotation.

Layout of the key directory (0700): `<kid>.pem` private keys (0600) and `keys.json` listing the kids
oldest first. The newest key signs; every listed key is published in the JWKS, so a token signed
just before a rotation still verifies until the next rotation retires its key (keep >= 2, and rotate
no more often than the access-token lifetime). A running issuer notices a rotation by the mtime of
`keys.json`, so `python -m seclab.idp rotate-keys` needs no restart.
Ref: RFC 7517 (JWK), RFC 7518 3.3 (RS256, keys >= 2048 bits), ASVS 4.0.3 V6.4.1/V6.4.2.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from joserfc.jwk import KeySet, RSAKey

KEY_BITS = 3072  # NIST SP 800-57: 3072-bit RSA for protection beyond 2030
INDEX = "keys.json"


def _write_private(path: Path, data: bytes) -> None:
    """Create the file 0600 before writing: a private key is never world-readable, not even briefly."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


@dataclass
class KeyStore:
    """Signing keys on disk; `signing_key()` and `jwks()` reload when `keys.json` changes."""

    directory: Path
    bits: int = KEY_BITS
    _mtime: float = field(default=-1.0, init=False)
    _keys: list[RSAKey] = field(default_factory=list, init=False)

    @property
    def index(self) -> Path:
        return self.directory / INDEX

    def _read_index(self) -> list[dict[str, Any]]:
        if not self.index.exists():
            return []
        return list(json.loads(self.index.read_text(encoding="utf-8"))["keys"])

    def _write_index(self, entries: list[dict[str, Any]]) -> None:
        _write_private(self.index, (json.dumps({"keys": entries}, indent=2) + "\n").encode())

    def _generate(self) -> dict[str, Any]:
        key = RSAKey.generate_key(self.bits, private=True)
        kid = key.thumbprint()  # RFC 7638: the kid is derived from the key, never guessed or reused
        _write_private(self.directory / f"{kid}.pem", key.as_pem(private=True))
        return {"kid": kid, "created": int(time.time())}

    def ensure(self) -> bool:
        """Create the directory and a first key when there is none. True when something changed."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)
        if self._read_index():
            return False
        self._write_index([self._generate()])
        return True

    def rotate(self, keep: int = 2) -> str:
        """Add a new signing key; keep the `keep` newest in the JWKS, delete the older ones."""
        if keep < 1:
            raise ValueError("keep must be >= 1")
        self.ensure()
        entries = [*self._read_index(), self._generate()]
        retired, entries = entries[:-keep], entries[-keep:]
        self._write_index(entries)
        for old in retired:
            (self.directory / f"{old['kid']}.pem").unlink(missing_ok=True)
        return str(entries[-1]["kid"])

    def _load(self) -> list[RSAKey]:
        try:
            mtime = self.index.stat().st_mtime_ns
        except FileNotFoundError:
            raise RuntimeError(f"no signing keys in {self.directory}: run `python -m seclab.idp init`") from None
        if mtime != self._mtime:
            keys = []
            for entry in self._read_index():
                pem = (self.directory / f"{entry['kid']}.pem").read_bytes()
                keys.append(RSAKey.import_key(pem, parameters={"kid": entry["kid"], "use": "sig", "alg": "RS256"}))
            self._keys, self._mtime = keys, mtime
        return self._keys

    def signing_key(self) -> RSAKey:
        return self._load()[-1]

    def key_set(self) -> KeySet:
        return KeySet(list(self._load()))

    def jwks(self) -> dict[str, Any]:
        """Public keys only (the private members never leave this module)."""
        return {"keys": [k.as_dict(private=False) for k in reversed(self._load())]}
