"""The lab's certificate plan, built from the lab definition.

Why here and not in a playbook: Ansible (`python -m pki ensure --lab-json ...`) and Pulumi
(`build_plan(lab)` then `ensure(...)` on the controller) must issue the very same set of
certificates, so the set is computed once, in Python, from `labdef.LabDefinition`.
"""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any

from labdef import LabDefinition

from .model import CaSettings, CertSpec, PkiPlan

LOOPBACK_DNS = ("localhost",)
LOOPBACK_IPS = (ip_address("127.0.0.1"), ip_address("::1"))

# name -> (OS user that reads the key, purpose, reload hint). The hints are for people; the reload
# plan that `lab pki rotate` and `./lab up` run is pki/services.py.
# Owners are the Debian package users; a missing user is skipped at ensure() time (e.g. in CI).
# nginx loads every certificate and key in its master process (root) at config load, so the
# edge keys stay root-owned and are never readable by the www-data workers (ASVS 6.4.1).
SERVERS: dict[str, tuple[str | None, str, str]] = {
    "edge": (None, "nginx TLS edge (public HTTPS)", "nginx -s reload (graceful: old workers finish)"),
    "app": ("seclab", "FastAPI app behind the edge (mTLS from nginx)", "supervisorctl signal HUP app (rolling worker restart)"),
    "idp": (
        "keycloak",
        "Keycloak HTTPS on loopback, behind the edge",
        "Keycloak re-reads it every https-certificates-reload-period (1h); ./lab up",
    ),
    "postgres": ("postgres", "PostgreSQL server TLS", "pg_ctlcluster 15 main reload (SIGHUP re-reads ssl_*)"),
    "redis": ("redis", "Redis server TLS", "CONFIG SET tls-cert-file ... as seclab_tls_reload"),
    "prometheus": ("prometheus", "Prometheus web TLS", "not loaded here (web listener is plain HTTP on loopback)"),
    "llama": ("seclab", "llama.cpp model server TLS", "not loaded here (plain HTTP on loopback)"),
    "flower": ("seclab", "Celery Flower (lab-admin only, behind the edge)", "not loaded here (plain HTTP on loopback)"),
    # The log search engine has no security plugin: its loopback nginx gateway is the TLS (and mTLS) end.
    "logsearch": (None, "log search gateway (nginx, mTLS, loopback)", "./lab up (restarts the gateway when re-issued)"),
}

# name -> (common name, OS user, purpose). The CN of a PostgreSQL client must equal its role
# name: pg_hba `clientcert=verify-full` compares the CN with the login role (PostgreSQL 15 docs 21.12).
CLIENTS: dict[str, tuple[str, str | None, str]] = {
    "edge-client": ("edge-client", None, "nginx -> app mTLS (proxy_ssl_certificate)"),
    "seclab_app": ("seclab_app", "seclab", "app -> PostgreSQL (clientcert=verify-full, CN = role)"),
    "app-redis": ("app-redis", "seclab", "app -> Redis TLS client"),
    # The server certificate `redis` is serverAuth only: a replica (to its primary) and a sentinel (to
    # the data nodes and the other sentinels) present this one (tls-client-cert-file).
    "redis-peer": ("redis-peer", "redis", "Redis replica -> primary, Sentinel -> Redis and sentinels (TLS client)"),
    "worker": ("worker", "seclab", "Celery worker -> Redis/PostgreSQL TLS client"),
    "prometheus-scraper": ("prometheus-scraper", "prometheus", "Prometheus -> exporters and app /metrics"),
    # One PostgreSQL client certificate per login role (CN = role): a certificate is never shared
    # between roles, so `clientcert=verify-full` binds each login to its own key (ASVS 4.0.3 V9.2.1).
    "seclab_monitor": ("seclab_monitor", "prometheus", "postgres_exporter -> PostgreSQL (CN = role seclab_monitor)"),
    "keycloak": ("keycloak", "keycloak", "Keycloak -> PostgreSQL (CN = role keycloak; DER PKCS#8 copy for pgjdbc)"),
    # Only these two CNs pass the log search gateway (ASVS 4.0.3 V9.2.1, V4.1.1): the shipper writes,
    # the lab's tools (`lab logs`, retention, shipping metrics) read and manage indices.
    "log-shipper": ("log-shipper", None, "rsyslog -> log search gateway (bulk writes)"),
    "log-reader": ("log-reader", None, "`lab logs`, retention and shipping metrics -> log search gateway"),
    # The app's lab-admin events view: the gateway lets this CN only search the lab's log indices
    # (read-only; ASVS 4.0.3 V4.1.3 least privilege), the app's user reads its key.
    "log-search": ("log-search", "seclab", "app (lab-admin events by request id) -> log search gateway, search only"),
}


def _pki_settings(lab: LabDefinition) -> dict[str, Any]:
    """Optional `pki:` section of lab.yml (proposed field); absent today, so defaults apply."""
    section = getattr(lab, "pki", None)
    if section is None:
        return {}
    return section.model_dump() if hasattr(section, "model_dump") else dict(section)


def client_uri(name: str) -> str:
    """A URI SAN that names a client without pretending to be a host name."""
    return f"urn:seclab:client:{name}"


def build_plan(lab: LabDefinition) -> PkiPlan:
    """Every certificate the lab needs, in a stable order (servers first, then clients)."""
    cfg = _pki_settings(lab)
    ca = CaSettings(
        organization=lab.name,
        root_common_name=f"{lab.name} Root CA",
        intermediate_common_name=f"{lab.name} Intermediate CA",
        key_algorithm=cfg.get("key_algorithm", "ecdsa-p256"),
        root_lifetime_days=cfg.get("root_lifetime_days", 5 * 365),
        intermediate_lifetime_days=cfg.get("intermediate_lifetime_days", 365),
        crl_lifetime_days=cfg.get("crl_lifetime_days", 30),
        renew_fraction=cfg.get("renew_fraction", 1 / 3),
    )
    leaf_days = int(cfg.get("leaf_lifetime_days", 30))
    hosts = list(dict.fromkeys([*LOOPBACK_DNS, *lab.edge.host_names]))
    certs: list[CertSpec] = []
    for name, (owner, purpose, hint) in SERVERS.items():
        # The bare service name is a SAN too: on the Pulumi engine, containers reach each other by it.
        dns = tuple(dict.fromkeys([*hosts, name]))
        certs.append(
            CertSpec(
                name=name,
                kind="server",
                common_name=hosts[0] if name == "edge" else name,
                dns_names=dns,
                ip_addresses=LOOPBACK_IPS,
                owner=owner,
                lifetime_days=leaf_days,
                purpose=purpose,
                reload_hint=hint,
            )
        )
    for name, (cn, owner, purpose) in CLIENTS.items():
        certs.append(
            CertSpec(
                name=name,
                kind="client",
                common_name=cn,
                uris=(client_uri(name),),
                owner=owner,
                lifetime_days=leaf_days,
                purpose=purpose,
            )
        )
    return PkiPlan(ca=ca, certs=tuple(certs))
