"""The realm converges onto lab.yml on the live Keycloak (what `./lab up` runs after the import).

Drift made through the admin API (a weakened setting, an edited user, a lost role) is put back; a
user added to the lab definition is created with its generated password and roles (and a lab-admin
gets the OTP credential Keycloak then demands), and removed again when it leaves the definition; an
unchanged definition reports `changed: false`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labdef import LabDefinition, User, totp
from seclab.keycloak.converge import converge

from .conftest import Keycloak, strong_password

pytestmark = pytest.mark.integration  # live: the lab's Keycloak


def _secrets(kc: Keycloak) -> Path:
    return Path(kc.lab.paths.secrets)


def test_an_unchanged_lab_changes_nothing(kc: Keycloak) -> None:
    converge(kc.lab, secrets_dir=_secrets(kc))  # whatever an earlier test left, once
    assert converge(kc.lab, secrets_dir=_secrets(kc)) == {"changed": False, "what": []}


def test_drift_is_put_back(kc: Keycloak) -> None:
    realm = kc.admin("GET", f"/{kc.realm}").json()
    assert kc.admin("PUT", f"/{kc.realm}", json={"accessTokenLifespan": 3600, "bruteForceProtected": False}).status_code == 204
    uid = kc.admin("GET", f"/{kc.realm}/users", params={"username": "bob", "exact": "true"}).json()[0]["id"]
    assert kc.admin("PUT", f"/{kc.realm}/users/{uid}", json={"firstName": "Mallory"}).status_code == 204
    role = kc.admin("GET", f"/{kc.realm}/roles/user").json()
    assert kc.admin("DELETE", f"/{kc.realm}/users/{uid}/role-mappings/realm", json=[role]).status_code == 204

    result = converge(kc.lab, secrets_dir=_secrets(kc))
    assert result["changed"] is True
    what = " ".join(result["what"])
    assert "accessTokenLifespan" in what and "bruteForceProtected" in what and "user:bob" in what
    assert "user-roles:bob" in what
    after = kc.admin("GET", f"/{kc.realm}").json()
    assert after["accessTokenLifespan"] == realm["accessTokenLifespan"] and after["bruteForceProtected"] is True
    assert kc.admin("GET", f"/{kc.realm}/users/{uid}").json()["firstName"] == "Bob"
    roles = {r["name"] for r in kc.admin("GET", f"/{kc.realm}/users/{uid}/role-mappings/realm").json()}
    assert "user" in roles
    assert converge(kc.lab, secrets_dir=_secrets(kc)) == {"changed": False, "what": []}


@pytest.fixture
def new_admin(kc: Keycloak) -> Iterator[tuple[LabDefinition, str]]:
    """The lab definition plus one more lab-admin, its generated password in the lab's secrets."""
    name = "it" + secrets.token_hex(4)
    users = _secrets(kc) / "users"
    (users / f"{name}.password").write_text(strong_password())
    (users / f"{name}.password").chmod(0o600)
    lab = kc.lab.model_copy(update={"users": [*kc.lab.users, User(username=name, roles=["lab-admin"],
                                                                 email=f"{name}@seclab.example",
                                                                 first_name="New", last_name="Admin")]})
    try:
        yield lab, name
    finally:
        converge(kc.lab, secrets_dir=_secrets(kc))  # removes the user again
        for suffix in ("password", "totp"):
            (users / f"{name}.{suffix}").unlink(missing_ok=True)


def test_a_new_lab_admin_is_created_with_password_and_enforced_totp(kc: Keycloak,
                                                                     new_admin: tuple[LabDefinition, str]) -> None:
    lab, name = new_admin
    result = converge(lab, secrets_dir=_secrets(kc))
    assert f"user:{name}" in result["what"] and f"totp:{name}" in result["what"]
    password = (_secrets(kc) / "users" / f"{name}.password").read_text().strip()
    # Keycloak demands the second factor from the new lab-admin, and accepts the provisioned seed's code.
    assert kc.password_grant(name, password).status_code in (400, 401)
    seed = (_secrets(kc) / "users" / f"{name}.totp").read_text().strip()
    ok = kc.password_grant(name, password, totp=totp.code(seed, int(time.time() // 30)))
    assert ok.status_code == 200, ok.text
    assert converge(lab, secrets_dir=_secrets(kc)) == {"changed": False, "what": []}
    # Leaving the lab definition removes the account from the realm.
    gone = converge(kc.lab, secrets_dir=_secrets(kc))
    assert f"deleted-user:{name}" in gone["what"]
    assert kc.admin("GET", f"/{kc.realm}/users", params={"username": name, "exact": "true"}).json() == []
