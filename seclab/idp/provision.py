"""Provisioning of the stand-in (run by the idp_standin role, idempotent): keys, hashes, realm export.

Reads the generated passwords (`<secrets>/users/<user>.password`), creates what is missing and only
the stand-in owns (lab-admin TOTP seeds `<secrets>/users/<user>.totp`, the probe client's secret
`<secrets>/idp/clients/<client>.secret`, signing keys), checks every password against the realm's
policy, stores argon2 hashes in `<state>/credentials.json` (0600) and writes the realm export with
credentials (0600) for Keycloak. A second run with the same inputs changes nothing.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from labdef import LabDefinition, totp
from labdef import realm as realm_mod
from seclab.idp import policy
from seclab.idp.issuer import Credentials
from seclab.idp.keys import KeyStore, _write_private


class ProvisionError(RuntimeError):
    """A missing or weak input, phrased for the person running the playbook."""


def _read_or_create(path: Path, make: Any) -> tuple[str, bool]:
    if path.exists():
        return path.read_text(encoding="utf-8").strip(), False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    value = make()
    _write_private(path, (value + "\n").encode())
    return value, True


def _keep_or_hash(hasher: PasswordHasher, old: str | None, password: str) -> str:
    """Re-use the stored hash when it still matches: argon2 salts, so re-hashing would always 'change'."""
    if old:
        try:
            if hasher.verify(old, password) and not hasher.check_needs_rehash(old):
                return old
        except (VerificationError, InvalidHashError):
            pass
    return hasher.hash(password)


def provision(
    lab: LabDefinition,
    *,
    secrets_dir: Path,
    state_dir: Path,
    keys_dir: Path | None = None,
    realm_export: Path | None = None,
    hasher: PasswordHasher | None = None,
) -> dict[str, Any]:
    hasher = hasher or PasswordHasher()
    changed: list[str] = []
    export = realm_mod.build_realm_export(lab)
    rules = export["passwordPolicy"]

    passwords: dict[str, str] = {}
    otp_seeds: dict[str, str] = {}
    for u in lab.users:
        pw_file = secrets_dir / "users" / f"{u.username}.password"
        if not pw_file.exists():
            raise ProvisionError(f"{pw_file}: missing (the secrets role generates user passwords first)")
        pw = pw_file.read_text(encoding="utf-8").rstrip("\n")
        bad = policy.violations(rules, pw, u.username, u.email)
        if bad:
            raise ProvisionError(f"{pw_file}: breaks the realm password policy ({', '.join(bad)})")
        passwords[u.username] = pw
        if "lab-admin" in u.roles:
            seed, created = _read_or_create(secrets_dir / "users" / f"{u.username}.totp", totp.new_secret)
            otp_seeds[u.username] = seed
            if created:
                changed.append(f"totp:{u.username}")

    client_secret, created = _read_or_create(
        secrets_dir / "idp" / "clients" / f"{realm_mod.PROBE_CLIENT_ID}.secret", lambda: secrets.token_urlsafe(32)
    )
    if created:
        changed.append(f"client-secret:{realm_mod.PROBE_CLIENT_ID}")

    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(state_dir, 0o700)
    cred_file = state_dir / "credentials.json"
    old = Credentials.load(cred_file)
    new = Credentials(
        users={n: _keep_or_hash(hasher, old.users.get(n), pw) for n, pw in passwords.items()},
        otp=otp_seeds,
        clients={realm_mod.PROBE_CLIENT_ID: hashlib.sha256(client_secret.encode()).hexdigest()},
    )
    text = new.model_dump_json(indent=2) + "\n"
    if not cred_file.exists() or cred_file.read_text(encoding="utf-8") != text or cred_file.stat().st_mode & 0o777 != 0o600:
        _write_private(cred_file, text.encode())
        changed.append("credentials")

    if KeyStore(keys_dir or state_dir / "keys").ensure():
        changed.append("keys")

    if realm_export is not None and realm_mod.write_realm_export(
        lab, realm_export, passwords, otp_secrets=otp_seeds,
        client_secrets={realm_mod.PROBE_CLIENT_ID: client_secret},
    ):
        changed.append("realm-export")
    return {"changed": bool(changed), "what": changed}
