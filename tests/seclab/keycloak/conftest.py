"""Fixtures for the identity tests: the lab's realm definition, and the live Keycloak `./lab up` runs.

Live tests talk to Keycloak itself over loopback HTTPS (its certificate verified against the lab
root), read the generated credentials (root-only files, as `./lab token` does) and use the
`seclab-admin` service account for what only an administrator can arrange (a throw-away user or
client, a lockout cleared). Without a provisioned Keycloak they skip, or fail under
SECLAB_REQUIRE_LAB=1 (`./lab test`).
"""

from __future__ import annotations

import secrets
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

import labdef
from labdef import totp
from labdef.realm import build_realm_export
from seclab.keycloak import access
from seclab.keycloak.provision import probe_secret_path
from tests.conftest import need


@pytest.fixture(scope="session")
def lab() -> labdef.LabDefinition:
    return labdef.load(labdef.DEFAULT_PATH)


@pytest.fixture(scope="session")
def realm_export(lab: labdef.LabDefinition) -> dict:
    return build_realm_export(lab)


def _keycloak_up(lab: labdef.LabDefinition) -> bool:
    try:
        ctx = ssl.create_default_context(cafile=str(access.ca_file(lab)))
        r = httpx.get(f"{access.base_url(lab)}/realms/{lab.identity.realm}/.well-known/openid-configuration",
                      verify=ctx, timeout=5)
        return r.status_code == 200
    except (OSError, httpx.HTTPError):
        return False


@dataclass
class Keycloak:
    """The live Keycloak of the lab, as its operator and its users reach it."""

    lab: labdef.LabDefinition
    http: httpx.Client
    admin_token: str
    cleanup: list[tuple[str, str]] = field(default_factory=list)

    @property
    def realm(self) -> str:
        return self.lab.identity.realm

    @property
    def oidc(self) -> str:
        return f"/realms/{self.realm}/protocol/openid-connect"

    @property
    def issuer(self) -> str:
        return self.lab.issuer

    def password(self, user: str) -> str:
        return (Path(self.lab.paths.secrets) / "users" / f"{user}.password").read_text().strip()

    def totp(self, user: str) -> str:
        """A code Keycloak has not seen yet (each code is accepted once), as `./lab token` makes it."""
        return totp.fresh_code(Path(self.lab.paths.secrets) / "users" / f"{user}.totp")

    def probe_secret(self) -> str:
        return probe_secret_path(Path(self.lab.paths.secrets)).read_text().strip()

    def password_grant(self, user: str, password: str | None = None, *, client_id: str | None = None,
                       **extra: str) -> httpx.Response:
        data = {"grant_type": "password", "client_id": client_id or self.lab.identity.cli_client_id,
                "username": user, "password": self.password(user) if password is None else password,
                "scope": "openid", **extra}
        if password is None and user in {u.username for u in self.lab.users} \
                and "lab-admin" in self.lab.user(user).roles and "totp" not in extra:
            data["totp"] = self.totp(user)
        return self.http.post(f"{self.oidc}/token", data=data)

    def token(self, user: str) -> dict[str, Any]:
        r = self.password_grant(user)
        assert r.status_code == 200, r.text
        return dict(r.json())

    # --- administration (the admin REST API on loopback, as `./lab up` uses it) -------------------
    def admin(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.http.request(method, f"/admin/realms{path}",
                                 headers={"Authorization": f"Bearer {self.admin_token}"}, **kw)

    def temp_user(self, password: str, roles: tuple[str, ...] = ("user",), tenant: str = "acme") -> tuple[str, str]:
        """A throw-away user of the realm (deleted after the test): (username, id)."""
        name = "it-" + uuid.uuid4().hex[:10]
        r = self.admin("POST", f"/{self.realm}/users", json={
            "username": name, "enabled": True, "firstName": "Test", "lastName": "User",
            "email": f"{name}@acme.example", "emailVerified": True, "attributes": {"tenant": [tenant]},
            "credentials": [{"type": "password", "value": password, "temporary": False}]})
        assert r.status_code == 201, r.text
        uid = r.headers["location"].rsplit("/", 1)[1]
        self.cleanup.append(("DELETE", f"/{self.realm}/users/{uid}"))
        roles_rep = [self.admin("GET", f"/{self.realm}/roles/{role}").json() for role in roles]
        assert self.admin("POST", f"/{self.realm}/users/{uid}/role-mappings/realm", json=roles_rep).status_code == 204
        return name, uid

    def temp_client(self, rep: dict[str, Any]) -> str:
        """A throw-away client (deleted after the test); its secret is returned."""
        secret = secrets.token_urlsafe(24)
        rep = {"protocol": "openid-connect", "enabled": True, "publicClient": False, "secret": secret,
               "clientAuthenticatorType": "client-secret", **rep}
        r = self.admin("POST", f"/{self.realm}/clients", json=rep)
        assert r.status_code == 201, r.text
        self.cleanup.append(("DELETE", f"/{self.realm}/clients/{r.headers['location'].rsplit('/', 1)[1]}"))
        return secret


def strong_password() -> str:
    """What the secrets role generates: passes the realm policy (length, classes)."""
    return secrets.token_hex(16) + "-Aa1"


@pytest.fixture(scope="session")
def kc_session(lab: labdef.LabDefinition) -> Iterator[tuple[httpx.Client, access.ClientCredential]]:
    need(access.ca_file(lab).exists() and _keycloak_up(lab), "Keycloak answering on loopback HTTPS (./lab up)")
    try:
        cred = access.admin_credentials(lab)[0]
    except OSError:
        need(False, "the Keycloak admin credential under paths.secrets/keycloak (root, ./lab up)")
        raise
    ctx = ssl.create_default_context(cafile=str(access.ca_file(lab)))
    with httpx.Client(base_url=access.base_url(lab), verify=ctx, timeout=30) as http:
        yield http, cred


@pytest.fixture
def kc(lab: labdef.LabDefinition, kc_session: tuple[httpx.Client, access.ClientCredential]) -> Iterator[Keycloak]:
    """Keycloak with a fresh admin token (the master realm's tokens live 60 s)."""
    http, cred = kc_session
    r = http.post(f"/realms/{access.ADMIN_REALM}/protocol/openid-connect/token",
                  data={"grant_type": "client_credentials", "client_id": cred.client_id, "client_secret": cred.secret})
    assert r.status_code == 200, r.text
    k = Keycloak(lab, http, str(r.json()["access_token"]))
    yield k
    for method, path in reversed(k.cleanup):
        k.admin(method, path)
