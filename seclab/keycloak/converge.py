"""Converge the running Keycloak onto the realm `labdef.realm.build_realm_export(lab)` describes.

The realm is imported at Keycloak's first start; on every later `./lab up` this applies the same
definition through the admin REST API (python-keycloak), so a change in lab.yml (a user, a tenant,
a policy) reaches Keycloak and an unchanged lab.yml changes nothing (`changed: false`).

What is compared, and why only that:
- realm settings: every scalar of the export (lifetimes, brute force, policies, flows bound);
- realm roles and client scopes by name (created when missing);
- clients: the fields the export sets (flows, redirect URIs, PKCE, scopes), probe secret included;
- users: profile, tenant attribute, realm roles, enabled; users no longer in lab.yml are deleted;
  passwords are write-only in Keycloak, so the fingerprint of the last password applied is kept
  (`<secrets>/keycloak/applied.json`, 0600) and a password is set again only when its file changed;
  a lab-admin without an OTP credential is given the provisioned seed (created with the user).
It also replaces the bootstrap admin: the permanent `seclab-admin` service account is created with a
generated secret and the temporary bootstrap client deleted (Keycloak server guide, "bootstrap admin").
"""

from __future__ import annotations

import hashlib
import json
import secrets as pysecrets
from pathlib import Path
from typing import Any

from keycloak import KeycloakAdmin, KeycloakOpenIDConnection
from keycloak.exceptions import KeycloakError

from labdef import LabDefinition
from labdef import realm as realm_mod
from seclab.keycloak import access
from seclab.keycloak.provision import RealmSecrets, load_secrets, write_private

# Realm keys that are not plain settings (collections converge separately, or import-only).
_NOT_SETTINGS = {"realm", "keycloakVersion", "attributes", "defaultRole"}
# Client fields compared and updated (the rest is Keycloak's own defaults).
_CLIENT_FIELDS = (
    "name", "enabled", "publicClient", "bearerOnly", "consentRequired", "standardFlowEnabled",
    "implicitFlowEnabled", "directAccessGrantsEnabled", "serviceAccountsEnabled", "frontchannelLogout",
    "fullScopeAllowed", "redirectUris", "webOrigins",
)  # fmt: skip
_USER_FIELDS = ("enabled", "firstName", "lastName", "email", "emailVerified")


class ConvergeError(RuntimeError):
    """Keycloak refused or could not be reached; phrased for the person running `./lab up`."""


def _connect(lab: LabDefinition, cred: access.ClientCredential, realm: str) -> KeycloakAdmin:
    conn = KeycloakOpenIDConnection(
        server_url=access.base_url(lab),
        realm_name=realm,
        user_realm_name=access.ADMIN_REALM,
        client_id=cred.client_id,
        client_secret_key=cred.secret,
        verify=str(access.ca_file(lab)),
        timeout=30,
    )
    admin = KeycloakAdmin(connection=conn)
    admin.get_realm(access.ADMIN_REALM)  # authenticates now: a dead credential fails here
    return admin


def _admin(lab: LabDefinition, realm: str) -> tuple[KeycloakAdmin, access.ClientCredential]:
    errors: list[str] = []
    for cred in access.admin_credentials(lab):
        try:
            return _connect(lab, cred, realm), cred
        except KeycloakError as exc:
            errors.append(f"{cred.client_id}: {exc.response_code}")
    raise ConvergeError("no admin credential is accepted by Keycloak (" + "; ".join(errors) + ")")


def _ensure_permanent_admin(lab: LabDefinition, admin: KeycloakAdmin, cred: access.ClientCredential,
                            changed: list[str]) -> KeycloakAdmin:
    """Create `seclab-admin` (service account, master realm role admin) and drop the bootstrap client."""
    master = access.ADMIN_REALM
    admin.change_current_realm(master)
    if not cred.permanent:
        secret_path = access.admin_secret_path(lab)
        secret = pysecrets.token_hex(32)
        existing = admin.get_client_id(access.ADMIN_CLIENT_ID)
        rep = {"clientId": access.ADMIN_CLIENT_ID, "name": "seclab lab tooling (admin REST API)",
               "enabled": True, "publicClient": False, "serviceAccountsEnabled": True,
               "standardFlowEnabled": False, "implicitFlowEnabled": False, "directAccessGrantsEnabled": False,
               "clientAuthenticatorType": "client-secret", "secret": secret, "protocol": "openid-connect"}
        if existing:
            admin.update_client(existing, rep)
        else:
            admin.create_client(rep)
        cid = admin.get_client_id(access.ADMIN_CLIENT_ID)
        if cid is None:
            raise ConvergeError(f"Keycloak did not create the {access.ADMIN_CLIENT_ID} client")
        sa = admin.get_client_service_account_user(cid)
        admin.assign_realm_roles(sa["id"], [admin.get_realm_role("admin")])
        write_private(secret_path, (secret + "\n").encode())
        changed.append(f"admin:{access.ADMIN_CLIENT_ID}")
        cred = access.ClientCredential(access.ADMIN_CLIENT_ID, secret, True)
        admin = _connect(lab, cred, master)
    boot = admin.get_client_id(access.BOOTSTRAP_CLIENT_ID)
    if boot:
        admin.delete_client(boot)
        changed.append(f"deleted:{access.BOOTSTRAP_CLIENT_ID}")
    return admin


def _settings_diff(want: dict[str, Any], have: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in want.items():
        if key in _NOT_SETTINGS or isinstance(value, dict) or (isinstance(value, list) and value and isinstance(value[0], dict)):
            continue
        if key not in have:  # import-only keys the admin API does not return (e.g. defaultDefaultClientScopes)
            continue
        if isinstance(value, list):
            if sorted(value) != sorted(have.get(key) or []):
                out[key] = value
        elif have.get(key) != value:
            out[key] = value
    return out


def _fingerprint(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class _Applied:
    """Fingerprints of the passwords last set in Keycloak (root-only file; never a password)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.data: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.data = {}
        self.dirty = False

    def differs(self, user: str, password: str) -> bool:
        return self.data.get(user) != _fingerprint(password)

    def record(self, user: str, password: str) -> None:
        self.data[user] = _fingerprint(password)
        self.dirty = True

    def save(self) -> None:
        if self.dirty:
            write_private(self.path, (json.dumps(self.data, indent=2, sort_keys=True) + "\n").encode())


def _converge_realm(admin: KeycloakAdmin, want: dict[str, Any], changed: list[str]) -> None:
    realm = want["realm"]
    have = admin.get_realm(realm)
    diff = _settings_diff(want, have)
    if diff:
        admin.update_realm(realm, diff)
        changed.append("realm:" + ",".join(sorted(diff)))
    admin.change_current_realm(realm)
    roles = {r["name"] for r in admin.get_realm_roles()}
    for role in want["roles"]["realm"]:
        if role["name"] not in roles:
            admin.create_realm_role({k: role[k] for k in ("name", "description")})
            changed.append(f"role:{role['name']}")
    scopes = {s["name"] for s in admin.get_client_scopes()}
    for scope in want["clientScopes"]:
        if scope["name"] not in scopes:
            admin.create_client_scope(scope)
            changed.append(f"client-scope:{scope['name']}")


def _converge_clients(admin: KeycloakAdmin, want: dict[str, Any], changed: list[str]) -> None:
    scopes = {s["name"]: s["id"] for s in admin.get_client_scopes()}
    for client in want["clients"]:
        cid = admin.get_client_id(client["clientId"])
        if not cid:
            admin.create_client(client)
            changed.append(f"client:{client['clientId']}")
            continue
        have = admin.get_client(cid)
        diff = {k: client[k] for k in _CLIENT_FIELDS if k in client and (
            sorted(client[k]) != sorted(have.get(k) or []) if isinstance(client[k], list) else have.get(k) != client[k])}
        attrs = {k: v for k, v in client.get("attributes", {}).items() if (have.get("attributes") or {}).get(k) != v}
        if attrs:
            diff["attributes"] = {**(have.get("attributes") or {}), **attrs}
        if diff:
            admin.update_client(cid, diff)
            changed.append(f"client:{client['clientId']}:" + ",".join(sorted(diff)))
        if "secret" in client and admin.get_client_secrets(cid).get("value") != client["secret"]:
            admin.update_client(cid, {"secret": client["secret"]})
            changed.append(f"client-secret:{client['clientId']}")
        defaults = {s["name"] for s in admin.get_client_default_client_scopes(cid)}
        for name in client.get("defaultClientScopes", []):
            if name not in defaults and name in scopes:
                admin.add_client_default_client_scope(cid, scopes[name], {})
                changed.append(f"client-scope:{client['clientId']}:{name}")


def _harden_builtin_clients(admin: KeycloakAdmin, changed: list[str]) -> None:
    """Keycloak's own clients of the realm (admin-cli, account), hardened as labdef.realm says."""
    for client_id, want in realm_mod.BUILTIN_CLIENT_HARDENING.items():
        cid = admin.get_client_id(client_id)
        if not cid:
            continue
        have = admin.get_client(cid)
        diff = {k: v for k, v in want.items() if k != "attributes" and have.get(k) != v}
        attrs = {k: v for k, v in want.get("attributes", {}).items() if (have.get("attributes") or {}).get(k) != v}
        if attrs:
            diff["attributes"] = {**(have.get("attributes") or {}), **attrs}
        if diff:
            admin.update_client(cid, diff)
            changed.append(f"builtin-client:{client_id}:" + ",".join(sorted(diff)))


def _converge_users(admin: KeycloakAdmin, lab: LabDefinition, want: dict[str, Any], creds: RealmSecrets,
                    applied: _Applied, changed: list[str]) -> None:
    managed = set(realm_mod.ROLES)
    wanted = {u["username"]: u for u in want["users"] if "serviceAccountClientId" not in u}
    for have in admin.get_users({"briefRepresentation": False}):
        name = have["username"]
        if name.startswith("service-account-"):
            continue
        rep = wanted.pop(name, None)
        if rep is None:
            admin.delete_user(have["id"])
            applied.data.pop(name, None)
            applied.dirty = True
            changed.append(f"deleted-user:{name}")
            continue
        diff = {k: rep.get(k) for k in _USER_FIELDS if have.get(k) != rep.get(k)}
        if (have.get("attributes") or {}).get("tenant") != rep["attributes"].get("tenant"):
            diff["attributes"] = {**(have.get("attributes") or {}), "tenant": rep["attributes"].get("tenant", [])}
        if diff:
            admin.update_user(have["id"], {**diff, "username": name})
            changed.append(f"user:{name}:" + ",".join(sorted(diff)))
        have_roles = {r["name"] for r in admin.get_realm_roles_of_user(have["id"])} & managed
        want_roles = set(rep["realmRoles"]) & managed
        if want_roles - have_roles:
            admin.assign_realm_roles(have["id"], [admin.get_realm_role(r) for r in sorted(want_roles - have_roles)])
        if have_roles - want_roles:
            admin.delete_realm_roles_of_user(have["id"], [admin.get_realm_role(r) for r in sorted(have_roles - want_roles)])
        if want_roles != have_roles:
            changed.append(f"user-roles:{name}")
        password = creds.passwords.get(name)
        if password is not None and applied.differs(name, password):
            if name in applied.data:  # a new password file: set it (an unknown record after import: trust it)
                admin.set_user_password(have["id"], password, temporary=False)
                changed.append(f"password:{name}")
            applied.record(name, password)
        if "lab-admin" in want_roles and name in creds.otp_seeds:
            kinds = {c.get("type") for c in admin.get_credentials(have["id"])}
            if "otp" not in kinds:
                # Keycloak's admin API cannot add an OTP credential to an existing user: re-create the user
                # with its provisioned seed (the import format), so MFA is never silently off.
                admin.delete_user(have["id"])
                wanted[name] = rep
                changed.append(f"otp:{name}")
    for name, rep in wanted.items():
        uid = admin.create_user({k: v for k, v in rep.items() if k not in ("id", "realmRoles")}, exist_ok=False)
        roles = [r for r in rep["realmRoles"] if r in managed]
        if roles:
            admin.assign_realm_roles(uid, [admin.get_realm_role(r) for r in roles])
        if name in creds.passwords:
            applied.record(name, creds.passwords[name])
        changed.append(f"user:{name}")


def converge(lab: LabDefinition, *, secrets_dir: Path) -> dict[str, Any]:
    """Apply the realm of `lab` to the running Keycloak; `{"changed": bool, "what": [...]}`."""
    creds = load_secrets(lab, secrets_dir)
    want = realm_mod.build_realm_export(
        lab, creds.passwords, otp_secrets=creds.otp_seeds, client_secrets=creds.client_secrets
    )
    changed: list[str] = list(creds.created)
    try:
        admin, cred = _admin(lab, access.ADMIN_REALM)
        admin = _ensure_permanent_admin(lab, admin, cred, changed)
        if want["realm"] not in {r["realm"] for r in admin.get_realms()}:
            admin.create_realm(want)
            changed.append(f"realm-created:{want['realm']}")
        _converge_realm(admin, want, changed)
        _converge_clients(admin, want, changed)
        _harden_builtin_clients(admin, changed)
        applied = _Applied(access.secrets_dir(lab) / "applied.json")
        _converge_users(admin, lab, want, creds, applied, changed)
        applied.save()
    except KeycloakError as exc:
        body = exc.error_message.decode() if isinstance(exc.error_message, bytes) else str(exc.error_message)
        raise ConvergeError(f"Keycloak refused ({exc.response_code}): {body[:300]}") from None
    return {"changed": bool(changed), "what": changed}
