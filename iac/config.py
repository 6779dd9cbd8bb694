"""Every setting the Pulumi program reads, read in one place.

Why one place: the lab definition (`lab.yml`) is the source of truth; Pulumi stack config only
says *where* things are on this Docker host (lab file, PKI dir, rendered-file dir) and may override
an image or a memory limit. Nothing else in `iac/` calls `pulumi.Config` or reads the environment.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

import pulumi

from labdef import LabDefinition, load

REPO_ROOT = Path(__file__).resolve().parent.parent
IAC_DIR = REPO_ROOT / "iac"

# Exact tags only (CIS Docker Benchmark 4.x / OWASP Top 10 2021 A08: a moving tag is an unreviewed update).
IMAGES: dict[str, str] = {
    "python": "python:3.12.8-slim-bookworm",
    "debian": "debian:12.8-slim",
    "busybox": "busybox:1.37.0",
    "postgres": "postgres:15.10-bookworm",
    "redis": "redis:7.4.1-bookworm",
    "keycloak": "quay.io/keycloak/keycloak:{keycloak_version}",
    "grafana": "grafana/grafana:11.3.1",
    "prometheus": "prom/prometheus:v2.55.1",
    "alertmanager": "prom/alertmanager:v0.27.0",
    "node_exporter": "prom/node-exporter:v1.8.2",
    "postgres_exporter": "quay.io/prometheuscommunity/postgres-exporter:v0.16.0",
    "redis_exporter": "oliver006/redis_exporter:v1.66.0-alpine",
    "nginx_exporter": "nginx/nginx-prometheus-exporter:1.3.0",
}

# Memory limits in MiB (CIS Docker Benchmark 5.10: limit memory so one container cannot starve the host).
MEMORY_MB: dict[str, int] = {
    "edge": 256,
    "idp": 1024,
    "postgres": 512,
    "redis": 256,
    "app": 512,
    "worker": 512,
    "llama": 1536,
    "prometheus": 512,
    "alertmanager": 128,
    "db-sync": 256,
    "node-exporter": 64,
    "postgres-exporter": 64,
    "redis-exporter": 64,
    "nginx-exporter": 64,
    "grafana": 256,
    # The engine: lab.yml logging.heap (512m) plus the JVM's off-heap and page cache (checked: >= 2x heap).
    "logsearch": 1024,
    "logsearch-gateway": 64,
    "logshipper": 128,
    "logsearch-keeper": 128,
}


@dataclass(frozen=True)
class TlsFiles:
    """Host paths of one PKI leaf: the chain the service presents, its key, and the trust anchor."""

    cert: str
    key: str
    ca: str


@dataclass(frozen=True)
class Settings:
    lab: LabDefinition
    lab_file: Path
    pki_dir: Path
    host_dir: Path
    """Rendered, non-secret files (configs, realm export) written on the Docker host."""
    secrets_dir: Path
    """Generated secret files (0400, owned by the reading container's uid)."""
    publish_address: str
    ops_port: int
    llama_model: str
    app_subnet: str = "172.30.81.0/24"
    """Subnet of the app network: fixed so the edge has a known address (SECLAB_TRUSTED_PROXIES)."""
    openai_api_key: pulumi.Output[str] | None = None
    """Stack secret seclab:openaiApiKey; without it the worker leaves OpenAI out of its provider chain."""
    images: dict[str, str] = field(default_factory=dict)
    memory_mb: dict[str, int] = field(default_factory=dict)
    tls_overrides: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        """Resource and network name prefix, from the lab's name."""
        return self.lab.name

    def image(self, key: str) -> str:
        return self.images[key]

    def memory_bytes(self, service: str) -> int:
        return self.memory_mb[service] * 1024 * 1024

    @property
    def edge_app_ip(self) -> str:
        """The edge's address on the app network: the one proxy the app trusts for X-Forwarded-For."""
        return str(ipaddress.ip_network(self.app_subnet)[10])

    def crl(self) -> str:
        """Both CRLs (pki/layout.py crl/crl.pem): nginx and PostgreSQL check every CA in the path."""
        return str(self.pki_dir / "crl" / "crl.pem")

    def tls(self, name: str) -> TlsFiles:
        """Certificate paths for a PKI leaf (see pki/layout.py); the one place PKI paths are decided."""
        return tls_files(self.pki_dir, name, self.tls_overrides.get(name, {}))


def tls_files(pki_dir: Path, name: str, override: dict[str, str] | None = None) -> TlsFiles:
    """Defaults follow pki/layout.py: certs/<name>.chain.crt, private/<name>.key, ca/ca-bundle.crt."""
    override = override or {}
    return TlsFiles(
        cert=override.get("cert", str(pki_dir / "certs" / f"{name}.chain.crt")),
        key=override.get("key", str(pki_dir / "private" / f"{name}.key")),
        ca=override.get("ca", str(pki_dir / "ca" / "ca-bundle.crt")),
    )


def load_settings() -> Settings:
    """Read the stack config (namespace `seclab`) with defaults taken from the lab definition."""
    cfg = pulumi.Config("seclab")
    lab_file = Path(cfg.get("labFile") or os.environ.get("SECLAB_LAB_FILE") or REPO_ROOT / "lab.yml")
    lab = load(lab_file)
    images = dict(IMAGES)
    images["keycloak"] = images["keycloak"].format(keycloak_version=lab.identity.keycloak_version)
    images.update(cfg.get_object("images") or {})
    memory = dict(MEMORY_MB)
    memory.update({k: int(v) for k, v in (cfg.get_object("memoryMb") or {}).items()})
    data = Path(lab.paths.data)
    return Settings(
        lab=lab,
        lab_file=lab_file,
        pki_dir=Path(cfg.get("pkiDir") or lab.paths.pki),
        host_dir=Path(cfg.get("hostDir") or data / "docker"),
        secrets_dir=Path(cfg.get("secretsDir") or Path(lab.paths.secrets) / "docker"),
        # Loopback by default: the lab is a workstation exercise; set 0.0.0.0 to expose the edge on a LAN.
        publish_address=cfg.get("publishAddress") or "127.0.0.1",
        ops_port=cfg.get_int("opsPort") or 9443,
        llama_model=cfg.get("llamaModel") or str(data / "models" / "tiny.gguf"),
        app_subnet=cfg.get("appSubnet") or "172.30.81.0/24",
        openai_api_key=cfg.get_secret("openaiApiKey"),
        images=images,
        memory_mb=memory,
        tls_overrides=cfg.get_object("tls") or {},
    )
