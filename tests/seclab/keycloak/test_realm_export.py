"""The realm export: hardening from lab.yml, kcwarden clean (or waived with a reason), secrets only on demand."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import labdef
from labdef.realm import REASONS, reasons_markdown, write_realm_export
from seclab.keycloak.provision import ProvisionError, probe_secret_path, provision

ROOT = Path(__file__).resolve().parents[3]
WAIVERS = ROOT / "labdef" / "kcwarden-waivers.yml"
KCWARDEN = shutil.which("kcwarden", path=str(Path(sys.executable).parent)) or "kcwarden"
SEVERE = {"Medium", "High", "Critical"}


def _kcwarden(export: dict, tmp_path: Path, *extra: str) -> list[dict]:
    path = tmp_path / "realm.json"
    path.write_text(json.dumps(export))
    out = tmp_path / "findings.json"
    subprocess.run([KCWARDEN, "audit", str(path), "--format", "json", "-o", str(out), *extra],
                   check=True, capture_output=True, timeout=120)
    return json.loads(out.read_text())


def test_kcwarden_finds_nothing_medium_or_higher_beyond_the_waivers(realm_export: dict, tmp_path: Path) -> None:
    findings = _kcwarden(realm_export, tmp_path, "-c", str(WAIVERS))
    severe = [(f["severity"], f["reporting_auditor"], f["entity"]) for f in findings if f["severity"] in SEVERE]
    assert severe == []


def test_every_waiver_has_a_reason_and_is_still_needed(realm_export: dict, tmp_path: Path) -> None:
    waivers = yaml.safe_load(WAIVERS.read_text())["auditors"]
    findings = _kcwarden(realm_export, tmp_path, "--auditors",
                         *[w["auditor"] for w in waivers if w["auditor"] != "KeycloakVersionShouldBeUpToDate"])
    raised = {(f["reporting_auditor"], f["entity"]) for f in findings}
    for w in waivers:
        assert len(w.get("reason", "")) > 40, w["auditor"]
        if w["auditor"] != "KeycloakVersionShouldBeUpToDate":  # needs GitHub; the lab host is offline
            assert all((w["auditor"], name) in raised for name in w["allowed"]), f"stale waiver {w}"


def test_kcwarden_would_catch_a_weakened_realm(realm_export: dict, tmp_path: Path) -> None:
    weak = json.loads(json.dumps(realm_export))
    weak["accessTokenLifespan"] = 3600
    weak["revokeRefreshToken"] = False
    web = next(c for c in weak["clients"] if c["clientId"] == "seclab-web")
    web["redirectUris"] = ["*"]
    web["implicitFlowEnabled"] = True
    findings = _kcwarden(weak, tmp_path, "-c", str(WAIVERS))
    raised = {f["reporting_auditor"] for f in findings if f["severity"] in SEVERE}
    assert {"AccessTokenLifespanTooLong", "RefreshTokensShouldBeRevokedAfterUse",
            "ClientMustNotUseGlobalWildcardURI", "ClientShouldDisableImplicitGrantFlow"} <= raised


def test_realm_hardening_comes_from_lab_yml(lab: labdef.LabDefinition, realm_export: dict) -> None:
    r, ident = realm_export, lab.identity
    assert r["realm"] == ident.realm and r["sslRequired"] == "all" and r["registrationAllowed"] is False
    assert r["bruteForceProtected"] is True and r["permanentLockout"] is False
    assert r["failureFactor"] == ident.brute_force_max_failures <= 5
    assert r["waitIncrementSeconds"] == ident.brute_force_wait_increment_s
    assert r["maxFailureWaitSeconds"] == ident.brute_force_max_wait_s
    assert r["accessTokenLifespan"] == ident.access_token_lifetime_s <= 300
    assert r["revokeRefreshToken"] is True and r["refreshTokenMaxReuse"] == 0
    assert r["ssoSessionIdleTimeout"] == ident.sso_idle_timeout_s
    assert r["ssoSessionMaxLifespan"] == ident.sso_max_lifespan_s
    assert r["eventsEnabled"] and r["adminEventsEnabled"] and r["adminEventsDetailsEnabled"]
    assert {"LOGIN_ERROR", "USER_DISABLED_BY_TEMPORARY_LOCKOUT"} <= set(r["enabledEventTypes"])
    for rule in ("length(12)", "upperCase(1)", "lowerCase(1)", "digits(1)", "specialChars(1)", "notUsername",
                 "notEmail", "passwordHistory(5)", "hashAlgorithm(argon2)"):
        assert rule in r["passwordPolicy"].split(" and ")
    assert (r["otpPolicyType"], r["otpPolicyDigits"], r["otpPolicyPeriod"]) == ("totp", 6, 30)
    assert {role["name"] for role in r["roles"]["realm"]} >= {"user", "tenant-admin", "lab-admin"}


def test_clients(lab: labdef.LabDefinition, realm_export: dict) -> None:
    clients = {c["clientId"]: c for c in realm_export["clients"]}
    assert all(c["fullScopeAllowed"] is False and c["implicitFlowEnabled"] is False for c in clients.values())
    web = clients["seclab-web"]
    assert web["publicClient"] and web["standardFlowEnabled"] and not web["directAccessGrantsEnabled"]
    assert web["attributes"]["pkce.code.challenge.method"] == "S256"
    assert web["redirectUris"] == lab.identity.redirect_uris and not any("*" in u for u in web["redirectUris"])
    cli = clients[lab.identity.cli_client_id]
    assert cli["directAccessGrantsEnabled"] and not cli["standardFlowEnabled"] and cli["redirectUris"] == []
    scopes = {s["name"]: s for s in realm_export["clientScopes"]}
    mappers = {m["protocolMapper"]: m["config"] for m in scopes["seclab-claims"]["protocolMappers"]}
    assert mappers["oidc-audience-mapper"]["included.custom.audience"] == lab.identity.api_audience
    assert mappers["oidc-usermodel-realm-role-mapper"]["claim.name"] == "realm_access.roles"
    assert mappers["oidc-usermodel-attribute-mapper"]["claim.name"] == "tenant"
    profile = json.loads(realm_export["components"]["org.keycloak.userprofile.UserProfileProvider"][0]
                         ["config"]["kc.user.profile.config"][0])
    tenant = next(a for a in profile["attributes"] if a["name"] == "tenant")
    assert tenant["permissions"]["edit"] == ["admin"]  # users cannot move themselves into another tenant


def test_users_and_secrets(lab: labdef.LabDefinition, realm_export: dict, tmp_path: Path) -> None:
    users = {u["username"]: u for u in realm_export["users"]}
    assert users["alice"]["attributes"] == {"tenant": ["acme"]} and "user" in users["alice"]["realmRoles"]
    assert users["admin"]["requiredActions"] == ["CONFIGURE_TOTP"]
    assert all(u["credentials"] == [] for u in users.values()), "no secret without being asked"
    path = tmp_path / "realm" / "realm-export.json"
    assert write_realm_export(lab, path, {"alice": "Secret-pass-123"}) is True
    assert path.stat().st_mode & 0o777 == 0o600
    assert write_realm_export(lab, path, {"alice": "Secret-pass-123"}) is False  # idempotent
    alice = next(u for u in json.loads(path.read_text())["users"] if u["username"] == "alice")
    assert alice["credentials"][0]["value"] == "Secret-pass-123"


def test_reasons_are_in_the_docs() -> None:
    docs = (ROOT / "docs" / "identity.md").read_text()
    assert reasons_markdown() in docs, "regenerate the table: python -c 'from labdef.realm import reasons_markdown; print(reasons_markdown())'"
    assert all(ref for _, ref in REASONS.values())


def test_provision_is_idempotent_and_refuses_weak_passwords(lab: labdef.LabDefinition, tmp_path: Path) -> None:
    secrets_dir = tmp_path / "s"
    (secrets_dir / "users").mkdir(parents=True)
    for u in lab.users:
        (secrets_dir / "users" / f"{u.username}.password").write_text("0123456789abcdef0123-Aa1\n")
    export = tmp_path / "data" / "realm" / "realm-export.json"
    first = provision(lab, secrets_dir=secrets_dir, realm_export=export)
    assert first["changed"] and {"realm-export", "totp:admin", "client-secret:seclab-probe"} <= set(first["what"])
    again = provision(lab, secrets_dir=secrets_dir, realm_export=export)
    assert again == {"changed": False, "what": []}
    for f in [export, secrets_dir / "users" / "admin.totp", probe_secret_path(secrets_dir)]:
        assert f.stat().st_mode & 0o777 == 0o600, f
    users = {u["username"]: u for u in json.loads(export.read_text())["users"]}
    assert users["alice"]["credentials"] == [{"type": "password", "value": "0123456789abcdef0123-Aa1", "temporary": False}]
    otp = next(c for c in users["admin"]["credentials"] if c["type"] == "otp")
    seed = (secrets_dir / "users" / "admin.totp").read_text().strip()
    assert json.loads(otp["secretData"]) == {"value": seed} and users["admin"]["requiredActions"] == []
    (secrets_dir / "users" / "alice.password").write_text("alice")
    with pytest.raises(ProvisionError, match="length"):
        provision(lab, secrets_dir=secrets_dir, realm_export=export)
