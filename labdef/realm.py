"""The Keycloak realm of the lab, built from the lab definition (one export JSON).

Why code and not a hand-edited JSON: the realm is *derived* from `lab.yml` (tenants, users, roles,
lifetimes, redirect URIs), and the same dict is used three times: Ansible writes it for
`kc.sh start --import-realm`, `seclab.keycloak.converge` applies it to the running Keycloak through
the admin REST API on every `./lab up`, and Pulumi mounts it into the Keycloak container. One
builder, so the three cannot drift.

Every hardening setting has its reason and public reference in `REASONS`; `reasons_markdown()`
renders them into docs/identity.md (a test keeps the two equal).

Secrets never enter the repository: `build_realm_export(lab)` without secrets renders no credential
at all; provisioning passes the generated passwords / OTP seeds / client secrets and writes the
result with `write_realm_export` (file 0600 under `paths.data`).
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from labdef import NAME_RE, LabDefinition

ROLES: dict[str, str] = {
    "user": "Chat in the user's own tenant.",
    "tenant-admin": "Manage the user's own tenant (members, conversations, budgets).",
    "lab-admin": "Operate the lab: tenants, audit log. Needs a second factor (TOTP).",
}

PASSWORD_POLICY = (
    "length(12) and maxLength(128) and upperCase(1) and lowerCase(1) and digits(1) and specialChars(1)"
    " and notUsername and notEmail and passwordHistory(5) and hashAlgorithm(argon2)"
)
"""Keycloak 26 policy provider ids (PasswordPolicyProvider ids: length, maxLength, upperCase, ...)."""

CLAIMS_SCOPE = "seclab-claims"
BASIC_SCOPE = "basic"
PROBE_CLIENT_ID = "seclab-probe"
DEFAULT_WEB_CLIENT_ID = "seclab-web"

ENABLED_EVENT_TYPES: list[str] = [
    "LOGIN", "LOGIN_ERROR", "LOGOUT", "LOGOUT_ERROR",
    "CODE_TO_TOKEN", "CODE_TO_TOKEN_ERROR", "REFRESH_TOKEN", "REFRESH_TOKEN_ERROR",
    "CLIENT_LOGIN", "CLIENT_LOGIN_ERROR", "REVOKE_GRANT", "INTROSPECT_TOKEN_ERROR",
    "UPDATE_PASSWORD", "UPDATE_PASSWORD_ERROR", "UPDATE_TOTP", "REMOVE_TOTP",
    "USER_DISABLED_BY_TEMPORARY_LOCKOUT",
]  # fmt: skip

# key -> (reason, public reference). Rendered into docs/identity.md.
REASONS: dict[str, tuple[str, str]] = {
    "sslRequired=all": (
        "Tokens and passwords only ever travel over TLS, also from loopback/private addresses.",
        "ASVS 4.0.3 V9.1.1; Keycloak server admin guide, SSL modes",
    ),
    "registrationAllowed=false": (
        "Accounts come from lab.yml only; self-registration would let anyone pick a tenant's door.",
        "ASVS 4.0.3 V1.2.3; Keycloak server admin guide, user registration",
    ),
    "bruteForceProtected": (
        ("Lock an account temporarily after `failureFactor` (<= 5) failed logins, waits growing by "
        "`waitIncrementSeconds` up to `maxFailureWaitSeconds`; never permanently (no lockout-DoS)."),
        "ASVS 4.0.3 V2.2.1; API2:2023; Keycloak server admin guide, brute force detection",
    ),
    "passwordPolicy": (
        ("At least 12 characters, at most 128 (long-password DoS), mixed classes, not the username or "
        "e-mail, 5 remembered, argon2 hashing."),
        "ASVS 4.0.3 V2.1.1, V2.1.2, V2.4.1; Keycloak server admin guide, password policies",
    ),
    "otpPolicy": (
        ("TOTP, 6 digits, 30 s, HmacSHA1 (what every authenticator app implements; HMAC-SHA1 is not "
        "weakened by SHA-1 collisions), look-ahead 1, a code is accepted once."),
        "ASVS 4.0.3 V2.8.1, V2.8.4; RFC 6238; Keycloak server admin guide, OTP policies",
    ),
    "lab-admin OTP flows": (
        ("Browser and direct-grant flows demand a TOTP from users with role lab-admin (conditional "
        "user role): the operator role needs a second factor, on every grant that can mint its token."),
        "ASVS 4.0.3 V2.2.3, V4.3.1; Keycloak server admin guide, conditional flows",
    ),
    "accessTokenLifespan": (
        "Access tokens live <= 300 s: a leaked bearer token is useful for minutes, not hours.",
        "ASVS 4.0.3 V3.5.3; RFC 9700 2.2; Keycloak server admin guide, session and token timeouts",
    ),
    "revokeRefreshToken+refreshTokenMaxReuse=0": (
        "Refresh tokens rotate and are single-use; a replayed one ends the session.",
        "RFC 9700 4.14.2; ASVS 4.0.3 V3.5.2; Keycloak server admin guide, revoke refresh token",
    ),
    "ssoSessionIdleTimeout/ssoSessionMaxLifespan": (
        "Sessions end after 30 min idle and 10 h absolute (from lab.yml).",
        "ASVS 4.0.3 V3.3.2, V3.3.4; Keycloak server admin guide, session timeouts",
    ),
    "offlineSessionMaxLifespanEnabled": (
        "No client gets the offline_access scope; the cap is there in case one ever does.",
        "RFC 9700 4.14; Keycloak server admin guide, offline access",
    ),
    "events": (
        "Login and admin events are recorded (admin events with representations) for the audit trail.",
        "ASVS 4.0.3 V7.1.3, V7.2.1; Keycloak server admin guide, auditing and events",
    ),
    "userProfile tenant attribute": (
        ("The `tenant` attribute is declared admin-view/admin-edit and unmanaged attributes are "
        "disabled: a user cannot move into another tenant through the account console."),
        "API1:2023, API3:2023; ASVS 4.0.3 V4.1.3; Keycloak server admin guide, user profile",
    ),
    "fullScopeAllowed=false": (
        "Tokens carry only the realm roles mapped to the client's scope (least privilege).",
        "ASVS 4.0.3 V1.4.3; Keycloak server admin guide, role scope mappings",
    ),
    "public web client: PKCE S256, exact redirect URIs, no implicit flow": (
        ("Authorization code + PKCE S256 with exact redirect URIs from lab.yml; no implicit flow "
        "(tokens in URLs), no direct grants."),
        "RFC 9700 2.1, 2.1.1, 4.1; ASVS 4.0.3 V3.5.x; Keycloak server admin guide, OIDC clients",
    ),
    "CLI client: direct grants only": (
        ("`lab token USER` uses the password grant: a separate public client with *only* that grant "
        "(no browser flow, no redirect URI), behind brute-force protection and lab-admin OTP. "
        "Waived in labdef/kcwarden-waivers.yml."),
        "RFC 9700 2.4 (ROPC must not be used: accepted for lab tooling only)",
    ),
    "audience mapper": (
        ("Access tokens carry `aud` = the API's audience, which the API pins; tokens for another "
        "audience are refused."),
        "ASVS 4.0.3 V3.5.3; RFC 8725 3.9; RFC 9068 4",
    ),
    "probe client": (
        ("Machine client (client_credentials) with no user role: its token reaches the API and is "
        "refused by every role-gated route."),
        "API5:2023; ASVS 4.0.3 V4.1.3",
    ),
    "defaultSignatureAlgorithm=RS256": (
        "Asymmetric signatures: the API verifies with the public JWKS and never holds a signing key.",
        "RFC 8725 3.1; ASVS 4.0.3 V3.5.3",
    ),
}


# Keycloak creates these clients in every realm itself; the import cannot describe them, so the admin
# API hardens them after the import (seclab.keycloak.converge). Found by kcwarden on the live realm.
BUILTIN_CLIENT_HARDENING: dict[str, dict[str, Any]] = {
    # Nobody administers the lab realm through its own admin-cli (the master realm's service account
    # does): no password grant on a public client (RFC 9700 2.4; kcwarden PublicClientShouldDisableDirectAccessGrants).
    "admin-cli": {"directAccessGrantsEnabled": False},
    # The account console's public client: authorization code with PKCE S256 only (RFC 9700 2.1.1;
    # kcwarden PublicClientsMustEnforcePKCE).
    "account": {"attributes": {"pkce.code.challenge.method": "S256"}},
}


def user_id(realm: str, username: str) -> str:
    """A stable `sub` for the users the realm import creates (import keeps `id`; admin-API users get Keycloak's)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:seclab:realm:{realm}:user:{username}"))


def web_client_id(lab: LabDefinition) -> str:
    """The browser (SPA) client id; lab.yml has no field for it yet (a need for the lead)."""
    return str(getattr(lab.identity, "web_client_id", DEFAULT_WEB_CLIENT_ID))


def _mapper(name: str, kind: str, config: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "protocol": "openid-connect",
        "protocolMapper": kind,
        "consentRequired": False,
        "config": config,
    }


def _claims_mappers(audience: str) -> list[dict[str, Any]]:
    """The claims the API relies on, in Keycloak's shapes."""
    tok = {"access.token.claim": "true", "introspection.token.claim": "true"}
    return [
        _mapper("realm roles", "oidc-usermodel-realm-role-mapper", {
            **tok, "id.token.claim": "false", "userinfo.token.claim": "false",
            "multivalued": "true", "claim.name": "realm_access.roles", "jsonType.label": "String",
        }),
        _mapper("tenant", "oidc-usermodel-attribute-mapper", {
            **tok, "id.token.claim": "true", "userinfo.token.claim": "true",
            "user.attribute": "tenant", "claim.name": "tenant", "jsonType.label": "String",
        }),
        _mapper("api audience", "oidc-audience-mapper", {
            **tok, "id.token.claim": "false", "included.custom.audience": audience,
        }),
        _mapper("username", "oidc-usermodel-property-mapper", {
            **tok, "id.token.claim": "true", "userinfo.token.claim": "true",
            "user.attribute": "username", "claim.name": "preferred_username", "jsonType.label": "String",
        }),
        _mapper("email", "oidc-usermodel-property-mapper", {
            **tok, "id.token.claim": "true", "userinfo.token.claim": "true",
            "user.attribute": "email", "claim.name": "email", "jsonType.label": "String",
        }),
    ]  # fmt: skip


def _client_scopes(audience: str) -> list[dict[str, Any]]:
    return [
        {
            "name": BASIC_SCOPE,
            "description": "sub and auth_time (Keycloak 25+ builtin scope, declared here)",
            "protocol": "openid-connect",
            "attributes": {"include.in.token.scope": "false", "display.on.consent.screen": "false"},
            "protocolMappers": [
                _mapper("sub", "oidc-sub-mapper", {"access.token.claim": "true", "introspection.token.claim": "true"}),
                _mapper("auth_time", "oidc-usersessionmodel-note-mapper", {
                    "user.session.note": "AUTH_TIME", "claim.name": "auth_time", "jsonType.label": "long",
                    "id.token.claim": "true", "access.token.claim": "true", "introspection.token.claim": "true",
                }),
            ],
        },
        {
            "name": CLAIMS_SCOPE,
            "description": "The claims the seclab API validates: roles, tenant, audience, username, email",
            "protocol": "openid-connect",
            "attributes": {"include.in.token.scope": "true", "display.on.consent.screen": "false"},
            "protocolMappers": _claims_mappers(audience),
        },
    ]  # fmt: skip


def _user_profile() -> dict[str, Any]:
    """Declarative user profile: users may view but not edit identity attributes; tenant is admin-only."""
    admin_edit = {"view": ["admin", "user"], "edit": ["admin"]}
    return {
        "attributes": [
            {"name": "username", "displayName": "${username}", "permissions": admin_edit, "multivalued": False,
             "validations": {"length": {"min": 3, "max": 255}, "username-prohibited-characters": {},
                             "up-username-not-idn-homograph": {}}},
            {"name": "email", "displayName": "${email}", "permissions": admin_edit, "multivalued": False,
             "validations": {"email": {}, "length": {"max": 255}}},
            {"name": "firstName", "displayName": "${firstName}", "permissions": admin_edit, "multivalued": False,
             "validations": {"length": {"max": 255}, "person-name-prohibited-characters": {}}},
            {"name": "lastName", "displayName": "${lastName}", "permissions": admin_edit, "multivalued": False,
             "validations": {"length": {"max": 255}, "person-name-prohibited-characters": {}}},
            {"name": "tenant", "displayName": "Tenant", "multivalued": False,
             "permissions": {"view": ["admin"], "edit": ["admin"]},
             "validations": {"pattern": {"pattern": NAME_RE, "error-message": "bad tenant"}}},
        ],
        "groups": [{"name": "user-metadata", "displayHeader": "User metadata",
                    "displayDescription": "Attributes, which refer to user metadata"}],
        # No unmanagedAttributePolicy key: absent means unmanaged attributes are disabled (Keycloak 26
        # accepts only ENABLED, ADMIN_EDIT, ADMIN_VIEW as values).
    }  # fmt: skip


def _execution(requirement: str, priority: int, *, authenticator: str | None = None,
               flow: str | None = None, config: str | None = None) -> dict[str, Any]:
    ex: dict[str, Any] = {"requirement": requirement, "priority": priority, "userSetupAllowed": False,
                          "authenticatorFlow": flow is not None}
    if authenticator:
        ex["authenticator"] = authenticator
    if flow:
        ex["flowAlias"] = flow
    if config:
        ex["authenticatorConfig"] = config
    return ex


def _flow(alias: str, executions: list[dict[str, Any]], *, top: bool) -> dict[str, Any]:
    return {"alias": alias, "description": "seclab: " + alias, "providerId": "basic-flow",
            "topLevel": top, "builtIn": False, "authenticationExecutions": executions}


def _flows() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Browser and direct-grant flows with a TOTP step conditional on the lab-admin role."""
    flows = [
        _flow("seclab-browser", [
            _execution("ALTERNATIVE", 10, authenticator="auth-cookie"),
            _execution("ALTERNATIVE", 20, flow="seclab-browser-forms"),
        ], top=True),
        _flow("seclab-browser-forms", [
            _execution("REQUIRED", 10, authenticator="auth-username-password-form"),
            _execution("CONDITIONAL", 20, flow="seclab-browser-lab-admin-otp"),
        ], top=False),
        _flow("seclab-browser-lab-admin-otp", [
            _execution("REQUIRED", 10, authenticator="conditional-user-role", config="lab-admin-role-browser"),
            _execution("REQUIRED", 20, authenticator="auth-otp-form"),
        ], top=False),
        _flow("seclab-direct-grant", [
            _execution("REQUIRED", 10, authenticator="direct-grant-validate-username"),
            _execution("REQUIRED", 20, authenticator="direct-grant-validate-password"),
            _execution("CONDITIONAL", 30, flow="seclab-direct-grant-lab-admin-otp"),
        ], top=True),
        _flow("seclab-direct-grant-lab-admin-otp", [
            _execution("REQUIRED", 10, authenticator="conditional-user-role", config="lab-admin-role-direct"),
            _execution("REQUIRED", 20, authenticator="direct-grant-validate-otp"),
        ], top=False),
    ]  # fmt: skip
    configs = [
        {"alias": alias, "config": {"condUserRole": "lab-admin", "negate": "false"}}
        for alias in ("lab-admin-role-browser", "lab-admin-role-direct")
    ]
    return flows, configs


def _base_client(client_id: str, name: str) -> dict[str, Any]:
    return {
        "clientId": client_id,
        "name": name,
        "enabled": True,
        "protocol": "openid-connect",
        "publicClient": True,
        "bearerOnly": False,
        "consentRequired": False,
        "standardFlowEnabled": False,
        "implicitFlowEnabled": False,
        "directAccessGrantsEnabled": False,
        "serviceAccountsEnabled": False,
        "frontchannelLogout": False,
        "fullScopeAllowed": False,
        "redirectUris": [],
        "webOrigins": [],
        "attributes": {
            "pkce.code.challenge.method": "S256",
            "oauth2.device.authorization.grant.enabled": "false",
            "oidc.ciba.grant.enabled": "false",
            "access.token.signed.response.alg": "RS256",
            "use.refresh.tokens": "true",
        },
        "defaultClientScopes": [BASIC_SCOPE, CLAIMS_SCOPE],
        "optionalClientScopes": [],
    }


def _clients(lab: LabDefinition, client_secrets: dict[str, str]) -> list[dict[str, Any]]:
    ident = lab.identity
    cli = _base_client(ident.cli_client_id, "seclab CLI (lab tooling: password grant)")
    cli["directAccessGrantsEnabled"] = True

    web = _base_client(web_client_id(lab), "seclab web (authorization code + PKCE)")
    web["standardFlowEnabled"] = True
    web["redirectUris"] = list(ident.redirect_uris)
    origins = sorted({f"{u.scheme}://{u.netloc}" for u in map(urlsplit, ident.redirect_uris)})
    web["webOrigins"] = origins
    web["attributes"]["post.logout.redirect.uris"] = "##".join(ident.redirect_uris)

    api = _base_client(ident.api_audience, "seclab API (resource server: no flow of its own)")
    api.update(publicClient=False, bearerOnly=True, clientAuthenticatorType="client-secret",
               defaultClientScopes=[BASIC_SCOPE])

    probe = _base_client(PROBE_CLIENT_ID, "seclab probe (client_credentials, no user role)")
    probe.update(publicClient=False, serviceAccountsEnabled=True, clientAuthenticatorType="client-secret")
    probe["attributes"]["use.refresh.tokens"] = "false"  # RFC 6749 4.4.3: no refresh for client_credentials
    if PROBE_CLIENT_ID in client_secrets:
        probe["secret"] = client_secrets[PROBE_CLIENT_ID]
    return [cli, web, api, probe]


def _users(lab: LabDefinition, user_secrets: dict[str, str], otp_secrets: dict[str, str],
           realm: str) -> list[dict[str, Any]]:
    users: list[dict[str, Any]] = []
    for u in lab.users:
        rep: dict[str, Any] = {
            "id": user_id(realm, u.username),
            "username": u.username,
            "enabled": True,
            "emailVerified": u.email is not None,
            "firstName": u.first_name,
            "lastName": u.last_name,
            "attributes": {"tenant": [u.tenant]} if u.tenant else {},
            "realmRoles": [f"default-roles-{realm}", *u.roles],
            "requiredActions": [],
            "credentials": [],
        }
        if u.email:
            rep["email"] = u.email
        if u.username in user_secrets:
            rep["credentials"].append({"type": "password", "value": user_secrets[u.username], "temporary": False})
        if "lab-admin" in u.roles:
            if u.username in otp_secrets:
                # Keycloak's OTP credential: the raw secret; authenticator apps get base32(secret).
                rep["credentials"].append({
                    "type": "otp", "userLabel": "seclab provisioned",
                    "secretData": json.dumps({"value": otp_secrets[u.username]}),
                    "credentialData": json.dumps({"subType": "totp", "digits": 6, "counter": 0,
                                                  "period": 30, "algorithm": "HmacSHA1"}),
                })  # fmt: skip
            else:
                rep["requiredActions"].append("CONFIGURE_TOTP")
        users.append(rep)
    users.append({
        "id": user_id(realm, f"service-account-{PROBE_CLIENT_ID}"),
        "username": f"service-account-{PROBE_CLIENT_ID}",
        "enabled": True,
        "serviceAccountClientId": PROBE_CLIENT_ID,
        "realmRoles": [f"default-roles-{realm}"],
        "attributes": {},
        "credentials": [],
        "requiredActions": [],
    })
    return users


def build_realm_export(
    lab: LabDefinition,
    user_secrets: dict[str, str] | None = None,
    *,
    otp_secrets: dict[str, str] | None = None,
    client_secrets: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One Keycloak realm export (for `kc.sh import` / `--import-realm`) from the lab definition.

    Without secrets the export has no credential at all (safe to print, diff and audit); with them
    it must only ever be written by `write_realm_export` (0600).
    """
    ident = lab.identity
    realm = ident.realm
    user_clients = [ident.cli_client_id, web_client_id(lab)]
    flows, flow_configs = _flows()
    return {
        "realm": realm,
        "displayName": f"{lab.name} lab",
        "enabled": True,
        "keycloakVersion": ident.keycloak_version,
        "sslRequired": "all",
        "registrationAllowed": False,
        "registrationEmailAsUsername": False,
        "rememberMe": False,
        "verifyEmail": False,  # no mail server in the lab; e-mails are set by the admin from lab.yml
        "loginWithEmailAllowed": False,
        "duplicateEmailsAllowed": False,
        "resetPasswordAllowed": False,
        "editUsernameAllowed": False,
        # brute force (ASVS V2.2.1)
        "bruteForceProtected": True,
        "bruteForceStrategy": "MULTIPLE",
        "permanentLockout": False,
        "maxTemporaryLockouts": 0,
        "failureFactor": ident.brute_force_max_failures,
        "waitIncrementSeconds": ident.brute_force_wait_increment_s,
        "maxFailureWaitSeconds": ident.brute_force_max_wait_s,
        "minimumQuickLoginWaitSeconds": 60,
        "quickLoginCheckMilliSeconds": 1000,
        "maxDeltaTimeSeconds": 43200,
        # passwords and second factor
        "passwordPolicy": PASSWORD_POLICY,
        "otpPolicyType": "totp",
        "otpPolicyAlgorithm": "HmacSHA1",
        "otpPolicyDigits": 6,
        "otpPolicyPeriod": 30,
        "otpPolicyLookAheadWindow": 1,
        "otpPolicyInitialCounter": 0,
        "otpPolicyCodeReusable": False,
        # tokens and sessions
        "defaultSignatureAlgorithm": "RS256",
        "accessTokenLifespan": ident.access_token_lifetime_s,
        "accessTokenLifespanForImplicitFlow": ident.access_token_lifetime_s,
        "accessCodeLifespan": 60,
        "accessCodeLifespanLogin": 1800,
        "accessCodeLifespanUserAction": 300,
        "actionTokenGeneratedByUserLifespan": 300,
        "revokeRefreshToken": True,
        "refreshTokenMaxReuse": 0,
        "ssoSessionIdleTimeout": ident.sso_idle_timeout_s,
        "ssoSessionMaxLifespan": ident.sso_max_lifespan_s,
        "clientSessionIdleTimeout": 0,  # 0 = the SSO session's idle timeout
        "clientSessionMaxLifespan": 0,
        "offlineSessionIdleTimeout": ident.sso_idle_timeout_s,
        "offlineSessionMaxLifespanEnabled": True,
        "offlineSessionMaxLifespan": ident.sso_max_lifespan_s,
        # events (ASVS V7)
        "eventsEnabled": True,
        "eventsExpiration": 30 * 24 * 3600,
        "eventsListeners": ["jboss-logging"],
        "enabledEventTypes": ENABLED_EVENT_TYPES,
        "adminEventsEnabled": True,
        "adminEventsDetailsEnabled": True,
        # roles, scopes, clients, users
        "roles": {
            "realm": [
                {"name": name, "description": desc, "composite": False, "clientRole": False, "attributes": {}}
                for name, desc in ROLES.items()
            ] + [{"name": f"default-roles-{realm}", "description": "no default role beyond authentication",
                  "composite": False, "clientRole": False, "attributes": {}}],
            "client": {},
        },
        "defaultRole": {"name": f"default-roles-{realm}", "composite": False, "clientRole": False},
        "scopeMappings": [{"client": c, "roles": list(ROLES)} for c in user_clients],
        "clientScopeMappings": {},
        "clientScopes": _client_scopes(ident.api_audience),
        "defaultDefaultClientScopes": [BASIC_SCOPE, CLAIMS_SCOPE],
        "defaultOptionalClientScopes": [],
        "clients": _clients(lab, client_secrets or {}),
        "users": _users(lab, user_secrets or {}, otp_secrets or {}, realm),
        "groups": [],
        "identityProviders": [],
        "identityProviderMappers": [],
        "authenticationFlows": flows,
        "authenticatorConfig": flow_configs,
        "browserFlow": "seclab-browser",
        "directGrantFlow": "seclab-direct-grant",
        "components": {
            "org.keycloak.userprofile.UserProfileProvider": [{
                "providerId": "declarative-user-profile",
                "subComponents": {},
                "config": {"kc.user.profile.config": [json.dumps(_user_profile())]},
            }],
        },
        "attributes": {"seclab.generatedBy": "labdef.realm.build_realm_export"},
    }


def write_realm_export(
    lab: LabDefinition,
    path: Path,
    user_secrets: dict[str, str] | None = None,
    *,
    otp_secrets: dict[str, str] | None = None,
    client_secrets: dict[str, str] | None = None,
) -> bool:
    """Write the export with mode 0600 (it may hold credentials); True when the file changed.

    The file is created 0600 *before* any byte is written (no window where it is world-readable),
    and left untouched when its content is already right, so provisioning reports changed=0.
    """
    data = build_realm_export(lab, user_secrets, otp_secrets=otp_secrets, client_secrets=client_secrets)
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        if path.stat().st_mode & 0o777 != 0o600:
            path.chmod(0o600)
            return True
        return False
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return True


def reasons_markdown() -> str:
    """The REASONS table as Markdown, embedded verbatim in docs/identity.md."""
    lines = ["| setting | why | reference |", "|---|---|---|"]
    for key, (why, ref) in REASONS.items():
        lines.append(f"| `{key}` | {why} | {ref} |")
    return "\n".join(lines)
