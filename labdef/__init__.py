"""The lab definition (`lab.yml`): one validated model read by Ansible, Pulumi, the app and the tests.

Why one model: every engine renders from the same data, so the topology cannot drift between
the native (Ansible) and container (Pulumi) paths. Errors name the field *and* the line of the
YAML file, because a student editing `lab.yml` should not have to read a Pydantic traceback.

This package is the project's kernel: it imports nothing of the project, and everything else (the app,
PKI, IaC, attacks, benchmarks, the CLI) imports it. Beside the model: `realm` (the Keycloak realm built
from it), `errors` (LabError), `status` (where the lab's services listen), `tokens` and `totp` (logging
in as a lab user). tests/test_import_rules.py keeps the arrows pointing down.
"""

from __future__ import annotations

import os
import re
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    computed_field,
    field_validator,
    model_validator,
)

NAME_RE = r"^[a-z][a-z0-9_]{1,30}$"
"""Tenant and user names become PostgreSQL identifiers and Redis key parts: keep them boring.
The one definition: the app (token claims, admin paths, the worker), the realm and the models use it;
SQL, which cannot import it, repeats it in a CHECK (app/db/migrations/lab/0001_lab.sql).
"""
NAME_PATTERN = re.compile(NAME_RE)

Role = Literal["user", "tenant-admin", "lab-admin"]


class _Strict(BaseModel):
    # Unknown keys are errors: a typo in lab.yml must not silently fall back to a default.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tenant(_Strict):
    name: str = Field(pattern=NAME_RE, description="schema tenant_<name>, role tenant_<name>")
    display_name: str = ""


class User(_Strict):
    username: str = Field(pattern=NAME_RE)
    tenant: str | None = Field(default=None, description="None only for lab-admin operators")
    roles: list[Role] = Field(min_length=1)
    email: str | None = None
    first_name: str = ""
    last_name: str = ""

    @model_validator(mode="after")
    def _tenant_required_for_tenant_roles(self) -> User:
        if self.tenant is None and any(r in ("user", "tenant-admin") for r in self.roles):
            raise ValueError("users with role 'user' or 'tenant-admin' need a tenant")
        return self


class Ports(_Strict):
    edge_https: int = Field(default=443, ge=1, le=65535)
    edge_http: int = Field(default=80, ge=1, le=65535, description="answers 308 to https")
    app: int = Field(default=8000, ge=1, le=65535, description="loopback only, behind the edge")
    idp: int = Field(default=8180, ge=1, le=65535, description="loopback only, behind the edge")
    idp_management: int = Field(default=9000, ge=1, le=65535, description="loopback: Keycloak health, metrics")
    postgres: int = Field(default=5432, ge=1, le=65535)
    redis: int = Field(default=6379, ge=1, le=65535, description="loopback: the Redis primary at first start")
    redis_replica: int = Field(default=6380, ge=1, le=65535, description="loopback: the Redis replica (TLS)")
    # Three sentinels: a quorum of 2 survives one lost sentinel (Redis Sentinel docs, "at least three").
    redis_sentinel_1: int = Field(default=26379, ge=1, le=65535, description="loopback: Redis Sentinel (TLS)")
    redis_sentinel_2: int = Field(default=26380, ge=1, le=65535, description="loopback: Redis Sentinel (TLS)")
    redis_sentinel_3: int = Field(default=26381, ge=1, le=65535, description="loopback: Redis Sentinel (TLS)")
    llama: int = Field(default=8081, ge=1, le=65535)
    prometheus: int = Field(default=9090, ge=1, le=65535)
    alertmanager: int = Field(default=9093, ge=1, le=65535)
    flower: int = Field(default=5555, ge=1, le=65535)
    node_exporter: int = Field(default=9100, ge=1, le=65535, description="loopback")
    postgres_exporter: int = Field(default=9187, ge=1, le=65535, description="loopback")
    redis_exporter: int = Field(default=9121, ge=1, le=65535, description="loopback")
    nginx_exporter: int = Field(default=9113, ge=1, le=65535, description="loopback")
    alert_webhook: int = Field(default=9095, ge=1, le=65535, description="loopback: Alertmanager test receiver")
    logsearch: int = Field(default=9200, ge=1, le=65535, description="loopback: log search gateway (nginx, mTLS)")
    logsearch_engine: int = Field(default=9201, ge=1, le=65535, description="loopback: OpenSearch HTTP (no auth)")
    logsearch_transport: int = Field(default=9301, ge=1, le=65535, description="loopback: OpenSearch transport")

    @model_validator(mode="after")
    def _distinct(self) -> Ports:
        """Two services on one port: the second fails to bind, or worse, a client talks to the wrong one."""
        seen: dict[int, str] = {}
        for name, port in self.model_dump().items():
            if port in seen:
                raise ValueError(f"ports {seen[port]} and {name} are both {port}")
            seen[port] = name
        return self

    def redis_sentinels(self) -> list[int]:
        """The sentinels' ports, in order (the app, the worker and Celery ask them for the primary)."""
        return [self.redis_sentinel_1, self.redis_sentinel_2, self.redis_sentinel_3]

    def redis_data_nodes(self) -> list[int]:
        """The two Redis data nodes: the primary at first start, then the replica (roles move on failover)."""
        return [self.redis, self.redis_replica]


class Paths(_Strict):
    prefix: str = Field(default="/opt/seclab", description="code and the service virtualenv")
    etc: str = Field(default="/etc/seclab", description="rendered settings")
    secrets: str = Field(default="/etc/seclab/secrets", description="generated secrets, dir 0700, files 0600")
    pki: str = Field(default="/etc/seclab/pki", description="lab CA and certificates")
    data: str = Field(default="/var/lib/seclab", description="state: models, realm export")
    logs: str = Field(default="/var/log/seclab", description="ECS JSON logs")


class RateLimits(_Strict):
    per_user_per_minute: int = Field(default=120, ge=1)
    per_address_per_minute: int = Field(default=600, ge=1)


class Limits(_Strict):
    body_max_bytes: int = Field(default=65536, ge=1024, description="edge and app reject larger bodies (413)")
    message_max_chars: int = Field(default=16000, ge=1)
    page_size_default: int = Field(default=20, ge=1)
    page_size_max: int = Field(default=100, ge=1)
    rate_limits: RateLimits = RateLimits()


class Identity(_Strict):
    provider: Literal["keycloak"] = Field(default="keycloak", description="Keycloak (the only provider)")
    realm: str = Field(default="seclab", pattern=r"^[a-z][a-z0-9-]{1,30}$")
    keycloak_version: str = Field(default="26.7.3", pattern=r"^26\.\d+\.\d+$", description="Keycloak 26.x")
    keycloak_sha256: str = Field(
        default="77657f30b7e90d70f727712ce1c967f430fd6a5e9f458d32d8c6df0635345f47",
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of keycloak-quarkus-dist-<version>.tar.gz (checked before unpacking)",
    )
    keycloak_archive: str | None = Field(
        default=None, description="local keycloak-quarkus-dist-<v>.tar.gz instead of Maven Central (offline hosts)"
    )
    api_audience: str = "seclab-api"
    cli_client_id: str = Field(default="seclab-cli", description="public client used by `lab token`")
    access_token_lifetime_s: int = Field(default=300, ge=30, le=300)
    sso_idle_timeout_s: int = Field(default=1800, ge=60)
    sso_max_lifespan_s: int = Field(default=36000, ge=300)
    brute_force_max_failures: int = Field(default=5, ge=1, le=5)
    brute_force_wait_increment_s: int = Field(default=60, ge=1)
    brute_force_max_wait_s: int = Field(default=900, ge=1)
    redirect_uris: list[str] = ["https://localhost/callback"]


class Waf(_Strict):
    paranoia_level: int = Field(default=2, ge=1, le=4)
    mode: Literal["blocking", "detection-only"] = "blocking"


class Edge(_Strict):
    host_names: list[str] = Field(default=["localhost"], min_length=1, description="SANs of the edge cert")
    tls_profile: Literal["intermediate", "modern"] = "intermediate"
    waf: Waf = Waf()


class Pki(_Strict):
    key_algorithm: Literal["ecdsa-p256", "ecdsa-p384", "rsa-3072"] = "ecdsa-p256"
    leaf_lifetime_days: int = Field(default=30, ge=1, le=398, description="short leaves instead of OCSP")
    intermediate_lifetime_days: int = Field(default=365, ge=1)
    root_lifetime_days: int = Field(default=1825, ge=1)
    crl_lifetime_days: int = Field(default=30, ge=1)
    renew_fraction: float = Field(default=1 / 3, gt=0, lt=1, description="renew when less than this is left")


class AIProvider(_Strict):
    name: str = Field(pattern=NAME_RE)
    kind: Literal["openai", "llama_cpp", "deterministic"]
    model: str
    base_url: str | None = None
    pseudonymize_pii: bool = True
    timeout_s: float = Field(default=30.0, gt=0)


class AI(_Strict):
    providers: list[AIProvider] = [
        AIProvider(name="openai", kind="openai", model="gpt-4o-mini", pseudonymize_pii=True),
        AIProvider(name="llama", kind="llama_cpp", model="tiny", pseudonymize_pii=False),
        AIProvider(name="local", kind="deterministic", model="echo-1", pseudonymize_pii=False),
    ]
    fallback: list[str] = ["openai", "llama", "local"]
    max_output_tokens: int = Field(default=256, ge=1)
    token_budget_per_user_per_hour: int = Field(default=20000, ge=1)
    token_budget_per_tenant_per_hour: int = Field(default=100000, ge=1)

    @model_validator(mode="after")
    def _fallback_names_known(self) -> AI:
        names = {p.name for p in self.providers}
        unknown = [n for n in self.fallback if n not in names]
        if unknown:
            raise ValueError(f"fallback names unknown providers: {', '.join(unknown)}")
        return self


class Performance(_Strict):
    p95_ms: int = Field(default=500, ge=1, description="latency target for `lab bench`")
    min_users: int = Field(default=5, ge=1)
    max_error_rate: float = Field(default=0.0, ge=0, le=1)
    user_steps: list[int] = Field(default=[5, 10, 20], min_length=1, description="`lab bench` user counts, in order")

    @field_validator("user_steps")
    @classmethod
    def _steps_increase(cls, v: list[int]) -> list[int]:
        # The maximum held is read off an increasing series: a step out of order would make it ambiguous.
        if any(n < 1 for n in v) or any(b <= a for a, b in pairwise(v)):
            raise ValueError("user_steps must be positive and strictly increasing")
        return v


class Hardening(_Strict):
    os: bool = Field(
        default=True,
        description="run the os_hardening role on lab hosts (issue 18); false leaves the host as the image "
                    "shipped it, and `lab up`, `lab verify` and the report say so",
    )


class Backup(_Strict):
    """PostgreSQL backups with pgBackRest (playbooks/roles/postgresql/tasks/backup.yml, `lab backup|restore`)."""

    repository: str = Field(default="/var/lib/pgbackrest", description="pgBackRest repository (encrypted)")
    full_every_hours: int = Field(default=24, ge=1, description="a full backup when the last is older")
    incremental_every_minutes: int = Field(default=60, ge=5, description="incremental backups in between")
    retention_full: int = Field(default=2, ge=1, le=50, description="full backups kept (with their WAL)")
    alert_after_minutes: int = Field(default=150, ge=10, description="alert when the last good backup is older")


class Logging(_Strict):
    """Centralized logging (issue 17): OpenSearch from Maven Central, rsyslog shipping, `lab logs`.

    Why a minimal distribution behind mTLS: the integ-test zip has no security plugin, so the engine
    listens on loopback without auth and only the lab's nginx gateway (client certificates of the lab
    CA) is the way in (ASVS 4.0.3 V9.2.1, V4.1.1). See docs/logging.md.
    """

    engine: Literal["opensearch", "none"] = Field(
        default="opensearch", description="none: no engine, no shipping (hosts without the memory for it)"
    )
    opensearch_version: str = Field(default="2.19.6", pattern=r"^2\.\d+\.\d+$", description="OpenSearch 2.x")
    opensearch_sha256: str = Field(
        default="71d6d8b1c637f3faecda0752b184b1cc526fc6eaad59ec1408c6327bb00b9293",
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of opensearch-<version>.zip (integ-test-zip), checked before unpacking",
    )
    opensearch_archive: str | None = Field(
        default=None, description="local opensearch-<version>.zip instead of Maven Central (offline hosts)"
    )
    heap: str = Field(
        default="512m", pattern=r"^[1-9][0-9]*[mg]$", description="JVM heap (-Xms = -Xmx), e.g. 512m, 1g"
    )
    retention_days: int = Field(default=7, ge=1, le=3650, description="daily indices older than this are deleted")
    queue_max_disk: str = Field(
        default="1g", pattern=r"^[1-9][0-9]*[kmg]$", description="disk the shipper's queue may use while the engine is down"
    )


class LabDefinition(_Strict):
    name: str = Field(default="seclab", pattern=NAME_RE)
    tenants: list[Tenant] = Field(min_length=1)
    users: list[User] = Field(min_length=1)
    ports: Ports = Ports()
    paths: Paths = Paths()
    limits: Limits = Limits()
    identity: Identity = Identity()
    edge: Edge = Edge()
    pki: Pki = Pki()
    ai: AI = AI()
    performance: Performance = Performance()
    hardening: Hardening = Hardening()
    backup: Backup = Backup()
    logging: Logging = Logging()

    @model_validator(mode="before")
    @classmethod
    def _drop_derived(cls, data: Any) -> Any:
        """Rendered definitions (lab.json) carry the derived fields; they are recomputed, not read."""
        if isinstance(data, dict) and ("edge_url" in data or "issuer" in data):
            data = {k: v for k, v in data.items() if k not in ("edge_url", "issuer")}
        return data

    @field_validator("tenants")
    @classmethod
    def _unique_tenants(cls, v: list[Tenant]) -> list[Tenant]:
        names = [t.name for t in v]
        if len(names) != len(set(names)):
            raise ValueError("tenant names must be unique")
        return v

    @model_validator(mode="after")
    def _users_reference_tenants(self) -> LabDefinition:
        known = {t.name for t in self.tenants}
        seen: set[str] = set()
        for u in self.users:
            if u.username in seen:
                raise ValueError(f"user {u.username!r} is defined twice")
            seen.add(u.username)
            if u.tenant is not None and u.tenant not in known:
                raise ValueError(f"user {u.username!r} names unknown tenant {u.tenant!r}")
        return self

    @computed_field  # type: ignore[prop-decorator]
    @property
    def edge_url(self) -> str:
        """The one public address of the lab: everything users reach goes through the edge."""
        port = "" if self.ports.edge_https == 443 else f":{self.ports.edge_https}"
        return f"https://{self.edge.host_names[0]}{port}"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def issuer(self) -> str:
        """Token issuer (`iss`): the IdP as users reach it, through the edge (Keycloak's frontend URL)."""
        return f"{self.edge_url}/realms/{self.identity.realm}"

    def tenant_names(self) -> list[str]:
        return [t.name for t in self.tenants]

    def user(self, username: str) -> User:
        for u in self.users:
            if u.username == username:
                return u
        raise KeyError(username)


class LabDefinitionError(ValueError):
    """A lab.yml problem, already phrased for a person: file, line, field, reason."""


DEFAULT_PATH = Path(__file__).resolve().parent.parent / "lab.yml"


def default_path() -> Path:
    """`SECLAB_LAB_FILE` wins, so tests and remote inventories can point at another definition."""
    return Path(os.environ.get("SECLAB_LAB_FILE", str(DEFAULT_PATH)))


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """Walk the composed YAML tree along a Pydantic error location to find its source line."""
    best = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if k.value == part), None)
            if nxt is None:  # an unknown key: point at the key itself
                key = next((k for k, _ in node.value if k.value == part), None)
                return key.start_mark.line + 1 if key is not None else best
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
        best = node.start_mark.line + 1
    return best


def parse(text: str, source: str = "lab.yml") -> LabDefinition:
    try:
        tree = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise LabDefinitionError(f"{source}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise LabDefinitionError(f"{source}: expected a mapping at the top level")
    try:
        return LabDefinition.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        field = ".".join(str(p) for p in loc) or "(top level)"
        line = _line_of(tree, loc)
        where = f":{line}" if line else ""
        msg = err["msg"].removeprefix("Value error, ")
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise LabDefinitionError(f"{source}{where}: {field}: {msg}{more}") from None


def load(path: Path | None = None) -> LabDefinition:
    path = path or default_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LabDefinitionError(f"{path}: cannot read the lab definition ({exc.strerror})") from None
    return parse(text, str(path))


def as_vars(lab: LabDefinition) -> dict[str, Any]:
    """The definition with every default filled in, as plain data for Ansible and Pulumi."""
    return {"lab": lab.model_dump(mode="json")}

