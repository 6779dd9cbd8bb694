"""The realm's credentials on the host, and the realm export Keycloak imports at its first start.

Run by the keycloak role as root (it reads the root-only password files), idempotent:
- checks every generated user password (`<secrets>/users/<user>.password`, secrets role) against the
  realm's password policy, because Keycloak does not check policies on import;
- creates what only the identity provider needs, when missing: lab-admin TOTP seeds
  (`<secrets>/users/<user>.totp`, so `./lab token admin` can compute the code Keycloak demands) and
  the probe client's secret (`<secrets>/keycloak/clients/<client>.secret`);
- writes the realm export with those credentials (0600) for `kc.sh start --import-realm`.
A second run with the same inputs changes nothing (`changed: false`).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labdef import LabDefinition, totp
from labdef import realm as realm_mod
from seclab.keycloak import policy


class ProvisionError(RuntimeError):
    """A missing or weak input, phrased for the person running the playbook."""


def write_private(path: Path, data: bytes) -> None:
    """Create the file 0600 before writing: a secret is never world-readable, not even briefly."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def read_or_create(path: Path, make: Callable[[], str]) -> tuple[str, bool]:
    """The secret in `path`, made by `make()` and written 0600 when the file is missing."""
    if path.exists():
        return path.read_text(encoding="utf-8").strip(), False
    value = make()
    write_private(path, (value + "\n").encode())
    return value, True


def probe_secret_path(secrets_dir: Path) -> Path:
    return secrets_dir / "keycloak" / "clients" / f"{realm_mod.PROBE_CLIENT_ID}.secret"


def totp_path(secrets_dir: Path, username: str) -> Path:
    return secrets_dir / "users" / f"{username}.totp"


@dataclass
class RealmSecrets:
    """Every credential the realm holds, read (or created) from the lab's secrets directory."""

    passwords: dict[str, str] = field(default_factory=dict)
    otp_seeds: dict[str, str] = field(default_factory=dict)
    client_secrets: dict[str, str] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)


def load_secrets(lab: LabDefinition, secrets_dir: Path) -> RealmSecrets:
    """Read the users' passwords (checked against the realm policy) and create missing seeds/secrets."""
    rules = str(realm_mod.build_realm_export(lab)["passwordPolicy"])
    out = RealmSecrets()
    for u in lab.users:
        pw_file = secrets_dir / "users" / f"{u.username}.password"
        if not pw_file.exists():
            raise ProvisionError(f"{pw_file}: missing (the secrets role generates user passwords first)")
        pw = pw_file.read_text(encoding="utf-8").rstrip("\n")
        bad = policy.violations(rules, pw, u.username, u.email)
        if bad:
            raise ProvisionError(f"{pw_file}: breaks the realm password policy ({', '.join(bad)})")
        out.passwords[u.username] = pw
        if "lab-admin" in u.roles:
            seed, created = read_or_create(totp_path(secrets_dir, u.username), totp.new_secret)
            out.otp_seeds[u.username] = seed
            if created:
                out.created.append(f"totp:{u.username}")
    secret, created = read_or_create(probe_secret_path(secrets_dir), lambda: secrets.token_urlsafe(32))
    out.client_secrets[realm_mod.PROBE_CLIENT_ID] = secret
    if created:
        out.created.append(f"client-secret:{realm_mod.PROBE_CLIENT_ID}")
    return out


def provision(lab: LabDefinition, *, secrets_dir: Path, realm_export: Path) -> dict[str, Any]:
    """Credentials and the import file; `{"changed": bool, "what": [...]}` for Ansible."""
    creds = load_secrets(lab, secrets_dir)
    changed = list(creds.created)
    if realm_mod.write_realm_export(
        lab, realm_export, creds.passwords, otp_secrets=creds.otp_seeds, client_secrets=creds.client_secrets
    ):
        changed.append("realm-export")
    return {"changed": bool(changed), "what": changed}
