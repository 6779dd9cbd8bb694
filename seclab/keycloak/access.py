"""Where Keycloak is reached on this host and with which admin credential.

Keycloak listens on loopback HTTPS only (lab certificate `idp`, verified against the lab root). Its
admin REST API is never routed by the edge; lab tooling (`./lab up`'s convergence, the identity
tests) uses a confidential service-account client of the master realm whose secret was generated at
provisioning (`<secrets>/keycloak/admin-client.secret`, root-only). Before that account exists (the
first start), the temporary bootstrap account (`bootstrap-admin.secret`) is the only way in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labdef import LabDefinition

ADMIN_CLIENT_ID = "seclab-admin"
BOOTSTRAP_CLIENT_ID = "seclab-bootstrap-admin"
ADMIN_REALM = "master"


def base_url(lab: LabDefinition) -> str:
    return f"https://127.0.0.1:{lab.ports.idp}"


def ca_file(lab: LabDefinition) -> Path:
    return Path(lab.paths.pki) / "ca" / "ca-bundle.crt"


def secrets_dir(lab: LabDefinition) -> Path:
    return Path(lab.paths.secrets) / "keycloak"


def admin_secret_path(lab: LabDefinition) -> Path:
    return secrets_dir(lab) / "admin-client.secret"


def bootstrap_secret_path(lab: LabDefinition) -> Path:
    return secrets_dir(lab) / "bootstrap-admin.secret"


@dataclass(frozen=True)
class ClientCredential:
    client_id: str
    secret: str
    permanent: bool


def admin_credentials(lab: LabDefinition) -> list[ClientCredential]:
    """The admin credentials on this host, permanent first (OSError when none can be read)."""
    found: list[ClientCredential] = []
    for client_id, path, permanent in (
        (ADMIN_CLIENT_ID, admin_secret_path(lab), True),
        (BOOTSTRAP_CLIENT_ID, bootstrap_secret_path(lab), False),
    ):
        try:
            found.append(ClientCredential(client_id, path.read_text(encoding="utf-8").strip(), permanent))
        except FileNotFoundError:
            continue
    if not found:
        raise FileNotFoundError(f"no Keycloak admin credential under {secrets_dir(lab)}: run ./lab up")
    return found
