"""The default reload plan: which lab service loads which certificate, and how it picks up a new one.

Why one module: `lab pki rotate|revoke|init` and `./lab up` (`python -m pki reload`) must agree on
who needs a reload after a rotation, and the answer follows from how each program reads its files.
Two ways to read a certificate:

- at start: the process loads it once (nginx at config load, uvicorn per worker, asyncpg's pool
  SSLContext, PostgreSQL and Redis at start). A new file changes nothing until the service reloads.
- per connection: the file is read again for every new connection (redis-py's sync client in kombu,
  libpq, Prometheus' tls_config). New files are used at once; a reload only matters when the old
  certificate was revoked, to close the connections that were authenticated with it.

Every action is graceful (nothing stops listening): nginx starts new workers while old ones finish,
PostgreSQL re-reads ssl_* on SIGHUP, Redis re-creates its TLS context on CONFIG SET, uvicorn's
supervisor replaces its workers one at a time on SIGHUP (a new worker is serving before an old one
exits). Short-lived leaves are only safe if rotation is cheap (ASVS 4.0.3 V6.4.2, V9.2.1).
Program names mirror the playbooks' role defaults (`*_process_name`); a unit test keeps them equal.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict

from labdef import LabDefinition

from .model import PkiPlan

Loads = Literal["at-start", "per-connection", "not-loaded"]
Action = Literal["nginx-reload", "pg-reload", "redis-tls", "hup-rolling", "restart", "reprovision", "none"]

# supervisord program / systemd unit `seclab-<name>` of each service (playbooks/roles/*/defaults).
PROGRAMS: dict[str, str] = {
    "edge": "edge",  # edge_process_name
    "app": "app",  # app_process_name
    "postgresql": "postgresql",  # postgresql_process_name
    "redis": "redis",  # redis_process_name
    "redis-replica": "redis-replica",  # redis_nodes[1].name
    "redis-sentinel-1": "redis-sentinel-1",  # redis_sentinels[*].name
    "redis-sentinel-2": "redis-sentinel-2",
    "redis-sentinel-3": "redis-sentinel-3",
    "worker": "worker",  # worker_process_name
    "flower": "flower",  # worker_flower_process_name
    "idp": "idp",  # keycloak_process_name
    "llama": "llama",  # llama_process_name
    "prometheus": "prometheus",  # monitoring_process_names.prometheus
    "redis-exporter": "redis-exporter",  # monitoring_process_names.redis
    "postgres-exporter": "postgres-exporter",  # monitoring_process_names.postgres
    "logsearch-gateway": "logsearch-gateway",  # logsearch_gateway_process_name
    "logshipper": "logshipper",  # logsearch_shipper_process_name
    "logsearch-keeper": "logsearch-keeper",  # logsearch_keeper_process_name
}

HOW: dict[Action, str] = {
    "nginx-reload": "nginx -t, then nginx -s reload (new workers load the files; old ones finish their requests)",
    "pg-reload": "SELECT pg_reload_conf() (SIGHUP: ssl_* re-read for new connections, sessions keep theirs)",
    "redis-tls": "CONFIG SET tls-cert-file/tls-key-file/tls-ca-cert-file (same paths: a new TLS context)",
    "hup-rolling": "SIGHUP to uvicorn's supervisor: each worker is replaced once its successor serves",
    "restart": "restart of the program (no user request goes through it)",
    "reprovision": "run ./lab up (the keycloak role converts the key to DER for pgjdbc, then restarts)",
    "none": "nothing to do",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Use(_Strict):
    cert: str
    loads: Loads
    note: str = ""


class Probe(_Strict):
    """A TLS handshake that shows which certificate a listener presents right now."""

    port: int
    cert: str  # the server certificate it must present
    server_name: str | None = None  # SNI and host name check; None: chain check only
    client: str | None = None  # client certificate to present (listeners with mandatory mTLS)
    postgres: bool = False  # PostgreSQL SSLRequest before the handshake


class Consumer(_Strict):
    """One service of the lab and the certificates it reads."""

    service: str
    program: str
    uses: tuple[Use, ...]
    trust: bool = False  # loads ca/ca-bundle.crt at start
    crl: bool = False  # loads crl/crl.pem at start (nginx ssl_crl, PostgreSQL ssl_crl_file)
    action: Action
    probe: Probe | None = None

    @property
    def how(self) -> str:
        return HOW[self.action]

    def at_start(self) -> list[str]:
        return [u.cert for u in self.uses if u.loads == "at-start"]

    def reads(self) -> list[str]:
        return [u.cert for u in self.uses if u.loads != "not-loaded"]


class ReloadPlan(_Strict):
    consumers: tuple[Consumer, ...]

    def for_cert(self, name: str) -> list[Consumer]:
        return [c for c in self.consumers if any(u.cert == name for u in c.uses)]

    def get(self, service: str) -> Consumer:
        for c in self.consumers:
            if c.service == service:
                return c
        raise KeyError(f"unknown service: {service}")

    def due(
        self,
        issued: Iterable[str],
        *,
        revoked: Iterable[str] = (),
        crl_updated: bool = False,
    ) -> list[Consumer]:
        """The consumers that must act after a PKI change, in plan order (data stores first, edge last).

        `issued`: names (re)issued, `root`/`intermediate` included; `revoked`: names whose previous
        certificate went on the CRL (rotate --revoke-old, revoke --reissue).
        """
        new, gone = set(issued), set(revoked)
        ca_changed = bool(new & {"root", "intermediate"})
        out: list[Consumer] = []
        for c in self.consumers:
            if c.action == "none":
                continue
            if (
                new & set(c.at_start())
                or (ca_changed and (c.trust or c.at_start()))
                or (crl_updated and c.crl)
                or (gone & new & set(c.reads()))
            ):
                out.append(c)
        return out


def build_reload_plan(lab: LabDefinition, pki: PkiPlan) -> ReloadPlan:
    """Every consumer on the Ansible engine (supervisord or systemd), checked against the PKI plan.

    Raises ValueError when a leaf of the PKI plan has no consumer or a consumer names an unknown
    certificate: a certificate nobody reloads would be rotated in vain.
    """
    host = (lab.edge.host_names or ["localhost"])[0]
    p = PROGRAMS
    consumers = (
        Consumer(
            service="postgresql",
            program=p["postgresql"],
            trust=True,
            crl=True,
            action="pg-reload",
            uses=(Use(cert="postgres", loads="at-start"),),
            probe=Probe(port=lab.ports.postgres, cert="postgres", server_name="127.0.0.1", postgres=True),
        ),
        Consumer(
            service="redis",
            program=p["redis"],
            trust=True,
            action="redis-tls",
            uses=(Use(cert="redis", loads="at-start"), Use(cert="redis-peer", loads="at-start", note="tls-client-cert-file")),
            probe=Probe(port=lab.ports.redis, cert="redis", server_name="127.0.0.1", client="app-redis"),
        ),
        Consumer(
            service="redis-replica",
            program=p["redis-replica"],
            trust=True,
            action="redis-tls",
            uses=(Use(cert="redis", loads="at-start"), Use(cert="redis-peer", loads="at-start", note="tls-client-cert-file")),
            probe=Probe(port=lab.ports.redis_replica, cert="redis", server_name="127.0.0.1", client="app-redis"),
        ),
        # Sentinel mode has no CONFIG SET of the tls-* files: a restart, one sentinel at a time (the
        # other two keep the quorum of 2; a restarted sentinel keeps its rewritten state file).
        *(
            Consumer(
                service=name,
                program=p[name],
                trust=True,
                action="restart",
                uses=(Use(cert="redis", loads="at-start"), Use(cert="redis-peer", loads="at-start")),
            )
            for name in ("redis-sentinel-1", "redis-sentinel-2", "redis-sentinel-3")
        ),
        Consumer(
            service="app",
            program=p["app"],
            trust=True,
            action="hup-rolling",
            uses=(
                Use(cert="app", loads="at-start", note="uvicorn --ssl-certfile, per worker"),
                Use(cert="seclab_app", loads="at-start", note="asyncpg pool SSLContext, built once"),
                Use(
                    cert="app-redis",
                    loads="at-start",
                    note="redis.asyncio caches a context per connection object",
                ),
                Use(cert="log-search", loads="per-connection", note="httpx client per lab-admin events request"),
            ),
            probe=Probe(port=lab.ports.app, cert="app", server_name="127.0.0.1", client="edge-client"),
        ),
        Consumer(
            # Warm shutdown: running tasks finish, queued ones wait in Redis (acks late), beat resumes.
            service="worker",
            program=p["worker"],
            trust=True,
            action="restart",
            uses=(
                Use(cert="seclab_app", loads="at-start", note="asyncpg pool of the reply store"),
                Use(
                    cert="worker",
                    loads="per-connection",
                    note="kombu -> redis-py builds a context per connection",
                ),
            ),
        ),
        Consumer(
            service="flower",
            program=p["flower"],
            action="restart",
            uses=(
                Use(cert="worker", loads="per-connection", note="kombu -> redis-py"),
                Use(
                    cert="flower",
                    loads="at-start",
                    note="Flower (tornado) serves TLS to the edge with --certfile/--keyfile, read at start",
                ),
            ),
        ),
        Consumer(
            service="redis-exporter",
            program=p["redis-exporter"],
            trust=True,
            action="restart",
            uses=(Use(cert="prometheus-scraper", loads="at-start", note="-tls-client-cert-file"),),
        ),
        Consumer(
            service="postgres-exporter",
            program=p["postgres-exporter"],
            action="restart",
            uses=(Use(cert="seclab_monitor", loads="per-connection", note="libpq sslcert"),),
        ),
        Consumer(
            service="prometheus",
            program=p["prometheus"],
            action="none",
            uses=(
                Use(
                    cert="prometheus-scraper",
                    loads="per-connection",
                    note="tls_config files re-read on change",
                ),
                Use(cert="prometheus", loads="not-loaded", note="the web listener is plain HTTP on loopback"),
            ),
        ),
        Consumer(
            service="llama",
            program=p["llama"],
            action="none",
            uses=(Use(cert="llama", loads="not-loaded", note="llama.cpp serves plain HTTP on loopback"),),
        ),
        Consumer(
            service="idp",
            program=p["idp"],
            trust=True,
            action="reprovision",
            uses=(
                Use(
                    cert="idp",
                    loads="per-connection",
                    note="Keycloak re-reads its HTTPS certificate files every https-certificates-reload-period (1h)",
                ),
                Use(
                    cert="keycloak",
                    loads="at-start",
                    note="Keycloak's pgjdbc client (DER copy of the key, made and restarted by the keycloak role)",
                ),
            ),
        ),
        # Log search (logsearch role): `./lab up` restarts the gateway when its leaf or the CA changed;
        # the shipper (libcurl) and the keeper (httpx) load their client certificate per connection.
        Consumer(
            service="logsearch-gateway",
            program=p["logsearch-gateway"],
            trust=True,
            action="reprovision",
            uses=(Use(cert="logsearch", loads="at-start", note="nginx gateway ssl_certificate (restarted by ./lab up)"),),
        ),
        Consumer(
            service="logshipper",
            program=p["logshipper"],
            action="none",
            uses=(Use(cert="log-shipper", loads="per-connection", note="omelasticsearch tls.mycert (libcurl)"),),
        ),
        Consumer(
            service="logsearch-keeper",
            program=p["logsearch-keeper"],
            action="none",
            uses=(Use(cert="log-reader", loads="per-connection", note="httpx client per pass; also `lab logs`"),),
        ),
        Consumer(
            service="edge",
            program=p["edge"],
            trust=True,
            crl=True,
            action="nginx-reload",
            uses=(
                Use(cert="edge", loads="at-start", note="ssl_certificate"),
                Use(cert="edge-client", loads="at-start", note="proxy_ssl_certificate to the app"),
            ),
            probe=Probe(port=lab.ports.edge_https, cert="edge", server_name=host),
        ),
    )
    plan = ReloadPlan(consumers=consumers)
    leaves = set(pki.names())
    used = {u.cert for c in consumers for u in c.uses}
    if unknown := used - leaves:
        raise ValueError(f"reload plan names certificates the PKI plan lacks: {', '.join(sorted(unknown))}")
    if orphans := leaves - used:
        raise ValueError(f"certificates without a consumer: {', '.join(sorted(orphans))}")
    for c in consumers:
        if c.probe is not None and c.probe.client is not None and c.probe.client not in leaves:
            raise ValueError(f"{c.service}: probe client {c.probe.client} is not in the PKI plan")
    return plan


def select(plan: ReloadPlan, services: Iterable[str]) -> list[Consumer]:
    """Consumers by service name; KeyError for a name that is not in the plan."""
    return [plan.get(s) for s in services]


__all__ = ["PROGRAMS", "Consumer", "Probe", "ReloadPlan", "Use", "build_reload_plan", "select"]
