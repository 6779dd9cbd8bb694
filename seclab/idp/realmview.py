"""The parts of a Keycloak realm export the stand-in serves, parsed once at the boundary (Pydantic).

The stand-in never has settings of its own: lifetimes, brute-force numbers, clients, users, roles and
token mappers all come from the export that `labdef.realm.build_realm_export` renders for Keycloak.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Mapper(_Model):
    name: str
    protocol_mapper: str = Field(alias="protocolMapper")
    config: dict[str, str] = {}

    def to(self, token: str) -> bool:
        """Does this mapper write into `token` (access/id/userinfo)?"""
        return self.config.get(f"{token}.token.claim", "false") == "true"


class ClientScope(_Model):
    name: str
    attributes: dict[str, str] = {}
    protocol_mappers: list[Mapper] = Field(default=[], alias="protocolMappers")


class Client(_Model):
    client_id: str = Field(alias="clientId")
    enabled: bool = True
    public: bool = Field(alias="publicClient")
    bearer_only: bool = Field(default=False, alias="bearerOnly")
    standard_flow: bool = Field(alias="standardFlowEnabled")
    direct_grants: bool = Field(alias="directAccessGrantsEnabled")
    service_accounts: bool = Field(alias="serviceAccountsEnabled")
    full_scope_allowed: bool = Field(alias="fullScopeAllowed")
    attributes: dict[str, str] = {}
    default_scopes: list[str] = Field(default=[], alias="defaultClientScopes")
    protocol_mappers: list[Mapper] = Field(default=[], alias="protocolMappers")

    @property
    def use_refresh_tokens(self) -> bool:
        return self.attributes.get("use.refresh.tokens", "true") == "true"


class User(_Model):
    id: str
    username: str
    enabled: bool = True
    email: str | None = None
    email_verified: bool = Field(default=False, alias="emailVerified")
    first_name: str = Field(default="", alias="firstName")
    last_name: str = Field(default="", alias="lastName")
    attributes: dict[str, list[str]] = {}
    realm_roles: list[str] = Field(default=[], alias="realmRoles")
    required_actions: list[str] = Field(default=[], alias="requiredActions")
    service_account_client_id: str | None = Field(default=None, alias="serviceAccountClientId")

    def attribute(self, name: str) -> str | None:
        values = self.attributes.get(name) or []
        return values[0] if values else None


class RealmView(_Model):
    realm: str
    enabled: bool = True
    access_token_lifespan: int = Field(alias="accessTokenLifespan")
    sso_idle: int = Field(alias="ssoSessionIdleTimeout")
    sso_max: int = Field(alias="ssoSessionMaxLifespan")
    revoke_refresh_token: bool = Field(alias="revokeRefreshToken")
    refresh_token_max_reuse: int = Field(alias="refreshTokenMaxReuse")
    brute_force_protected: bool = Field(alias="bruteForceProtected")
    permanent_lockout: bool = Field(alias="permanentLockout")
    failure_factor: int = Field(alias="failureFactor")
    wait_increment: int = Field(alias="waitIncrementSeconds")
    max_failure_wait: int = Field(alias="maxFailureWaitSeconds")
    quick_login_check_ms: int = Field(alias="quickLoginCheckMilliSeconds")
    minimum_quick_login_wait: int = Field(alias="minimumQuickLoginWaitSeconds")
    max_delta_time: int = Field(alias="maxDeltaTimeSeconds")
    otp_algorithm: str = Field(alias="otpPolicyAlgorithm")
    otp_digits: int = Field(alias="otpPolicyDigits")
    otp_period: int = Field(alias="otpPolicyPeriod")
    otp_look_ahead: int = Field(alias="otpPolicyLookAheadWindow")
    password_policy: str = Field(default="", alias="passwordPolicy")
    clients: list[Client]
    users: list[User]
    client_scopes: list[ClientScope] = Field(alias="clientScopes")
    scope_mappings: list[dict[str, Any]] = Field(default=[], alias="scopeMappings")
    enabled_event_types: list[str] = Field(default=[], alias="enabledEventTypes")

    def client(self, client_id: str) -> Client | None:
        return next((c for c in self.clients if c.client_id == client_id), None)

    def user(self, username: str) -> User | None:
        """Keycloak usernames are case-insensitive (stored lower-case)."""
        name = username.lower()
        return next((u for u in self.users if u.username == name and u.service_account_client_id is None), None)

    def service_account(self, client_id: str) -> User | None:
        return next((u for u in self.users if u.service_account_client_id == client_id), None)

    def scope(self, name: str) -> ClientScope | None:
        return next((s for s in self.client_scopes if s.name == name), None)

    def scoped_roles(self, client: Client) -> set[str] | None:
        """Realm roles a client's tokens may carry (None: all, when fullScopeAllowed)."""
        if client.full_scope_allowed:
            return None
        return {r for m in self.scope_mappings if m.get("client") == client.client_id for r in m.get("roles", [])}
