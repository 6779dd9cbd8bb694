"""Runtime settings of the chat API, rendered by the provisioning into `SECLAB_ENV_FILE`.

Why files for secrets: environment values leak into /proc, crash dumps and child processes; a
0600 file under `paths.secrets` does not (ASVS 4.0.3 V6.4.1, V14.3). Secret values are kept in
`SecretStr` so they never appear in a repr or a log line (ASVS V7.1.1).
"""

from __future__ import annotations

import json
import os
from functools import cached_property, lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from labdef import LabDefinition

DEFAULT_ENV_FILE = "/etc/seclab/app.env"


def env_file_path() -> Path:
    """The env file the provisioning rendered; `SECLAB_ENV_FILE` lets tests and dev point elsewhere."""
    return Path(os.environ.get("SECLAB_ENV_FILE", DEFAULT_ENV_FILE))


def read_secret_file(path: str | None) -> SecretStr | None:
    """Read one secret from its file; a trailing newline is not part of the secret."""
    if not path:
        return None
    return SecretStr(Path(path).read_text(encoding="utf-8").rstrip("\r\n"))


def parse_host_ports(value: str) -> list[tuple[str, int]]:
    """"h:p,h:p" -> [(h, p), ...]; a malformed entry is a ValueError naming it (no silent skip)."""
    out: list[tuple[str, int]] = []
    for raw in value.split(","):
        item = raw.strip()
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{item!r} is not host:port")
        out.append((host.strip("[]"), int(port)))
    return out


class Settings(BaseSettings):
    """`SECLAB_*` settings; the environment wins over the env file (12-factor override order)."""

    model_config = SettingsConfigDict(env_prefix="SECLAB_", extra="ignore", frozen=True)

    lab_file: str = "/etc/seclab/lab.json"
    db_host: str = "127.0.0.1"
    db_port: int = 5432
    db_name: str = "seclab"
    db_user: str = "seclab_app"
    db_password_file: str | None = None
    db_owner_user: str = "seclab_owner"
    db_owner_password_file: str | None = None
    db_sslmode: Literal["disable", "require", "verify-ca", "verify-full"] = "disable"
    db_sslcert: str | None = None
    db_sslkey: str | None = None
    db_sslrootcert: str | None = None
    # Per-tenant login roles (app/db/pools.py): the key each tenant's password derives from, and the
    # bounds of the per-tenant pools (lazily made, min 0, closed when idle) and of each role's sessions.
    db_tenant_key_file: str | None = None
    db_tenant_pool_max: int = Field(default=4, ge=1, le=50)
    db_tenant_pools_max: int = Field(default=64, ge=1, le=10000)
    db_tenant_pool_idle_s: float = Field(default=60.0, ge=1.0)
    db_tenant_connection_limit: int = Field(default=20, ge=1, le=1000)
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_user: str | None = None
    redis_password_file: str | None = None
    redis_ca_file: str | None = None
    redis_cert_file: str | None = None
    redis_key_file: str | None = None
    # Sentinels that name the current Redis primary ("host:port,host:port,..."); empty: redis_url's
    # host is used directly (tests, one-node labs). With sentinels, redis_url still gives the scheme
    # (rediss:// = TLS, also to the sentinels) and the database number.
    redis_sentinels: str = ""
    redis_master_name: str = "seclab"
    oidc_issuer: str = "http://127.0.0.1:8180/realms/seclab"
    oidc_audience: str = "seclab-api"
    oidc_jwks_url: str | None = None
    # The lab root that signs Keycloak's loopback HTTPS certificate: the JWKS is fetched verified
    # (a forged key set would let anyone mint tokens: ASVS 4.0.3 V9.2.1). None: the system store.
    oidc_ca_file: str | None = None
    oidc_leeway_s: int = 30
    oidc_jwks_min_refresh_s: float = 30.0
    trusted_proxies: str = "127.0.0.1"
    log_level: str = "INFO"
    # AI gateway secrets (files under paths.secrets, 0600). The canary is required by the worker's
    # output checks (OWASP LLM07:2025); a missing provider key leaves that provider out of the chain;
    # the PII key seals pseudonym mappings in Redis (LLM02:2025).
    llm_canary_file: str | None = None
    openai_api_key_file: str | None = None
    llama_api_key_file: str | None = None
    pii_key_file: str | None = None
    # The log search gateway (mTLS) for the lab-admin events view; empty: no engine, the view answers 503.
    logsearch_url: str = ""
    logsearch_ca_file: str | None = None
    logsearch_cert_file: str | None = None
    logsearch_key_file: str | None = None
    logsearch_index_prefix: str = "seclab-logs"

    @field_validator("redis_sentinels")
    @classmethod
    def _sentinels(cls, v: str) -> str:
        parse_host_ports(v)
        return v

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        v = v.upper()
        if v not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("unknown log level")
        return v

    @property
    def jwks_url(self) -> str:
        """Keycloak's JWKS path under the issuer unless set explicitly."""
        return self.oidc_jwks_url or self.oidc_issuer.rstrip("/") + "/protocol/openid-connect/certs"

    @cached_property
    def trusted_proxy_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        return tuple(ip_network(p.strip(), strict=False) for p in self.trusted_proxies.split(",") if p.strip())

    def is_trusted_proxy(self, host: str | None) -> bool:
        if not host:
            return False
        try:
            addr = ip_address(host)
        except ValueError:
            return False
        return any(addr in net for net in self.trusted_proxy_networks)

    def db_password(self) -> SecretStr | None:
        return read_secret_file(self.db_password_file)

    def db_tenant_key(self) -> SecretStr | None:
        return read_secret_file(self.db_tenant_key_file)

    def db_owner_password(self) -> SecretStr | None:
        return read_secret_file(self.db_owner_password_file)

    def redis_password(self) -> SecretStr | None:
        return read_secret_file(self.redis_password_file)

    def redis_sentinel_addresses(self) -> list[tuple[str, int]]:
        """(host, port) of each sentinel in `redis_sentinels` (validated when the settings load)."""
        return parse_host_ports(self.redis_sentinels)

    def load_lab(self) -> LabDefinition:
        """The rendered lab definition (`{"lab": {...}}` from `labdef.as_vars`)."""
        data = json.loads(Path(self.lab_file).read_text(encoding="utf-8"))
        return LabDefinition.model_validate(data["lab"])


def load_settings(env_file: Path | None = None) -> Settings:
    """Settings from the environment plus the env file, if it exists."""
    path = env_file or env_file_path()
    if path.is_file():
        return Settings(_env_file=str(path), _env_file_encoding="utf-8")  # type: ignore[call-arg]
    return Settings()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
