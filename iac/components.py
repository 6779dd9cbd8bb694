"""One ComponentResource per part of the lab (type `seclab:component:<Part>`): edge, identity, data, app,
worker, model, monitoring, logging. Each declares its services (`seclab:service:<Kind>`, iac/services.py);
every container is hardened in one place (iac/hardening.py), whatever component declares it.

Topology (same as the Ansible engine): edge -> app (mTLS) -> PostgreSQL/Redis (TLS + client cert);
Keycloak behind the edge; Prometheus + Alertmanager + exporters; Grafana; the log search engine
(OpenSearch + its mTLS gateway + the rsyslog shipper + the keeper, as the logsearch role runs them). Only the edge publishes ports, and its operator port only on the host's loopback.
Service configs come from the templates the Ansible engine renders (see iac/render.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pulumi
import pulumi_docker as docker
import pulumi_random as random

from labdef.realm import PROBE_CLIENT_ID

from . import render
from .config import IAC_DIR, Settings
from .context import MOVED, Context, sha256, tree_files, wrapper
from .hardening import TMPFS_OPTS, Hardened
from .hostfile import HostFile
from .services import File, Spec, tls_files


class Part(pulumi.ComponentResource):
    """A part of the lab: a component whose services are its children."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(f"seclab:component:{type(self).__name__}", type(self).__name__.lower(), None, None)
        self.ctx = ctx
        self.names: list[str] = []

    def add(self, spec: Spec, depends: tuple[str, ...] = ()) -> None:
        self.ctx.add(spec, self, depends)
        self.names.append(spec.hardened.service)

    def done(self) -> None:
        self.register_outputs({"services": self.names})


class Data(Part):
    """PostgreSQL and Redis: the data tier, TLS with client certificates only."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self._postgres()
        self._redis()
        self.done()

    def _postgres(self) -> None:
        ctx, s, lab = self.ctx, self.ctx.s, self.ctx.lab
        # seclab.conf and pg_hba.conf: datastores/postgresql/, shared with the postgresql role (hostssl + clientcert only).
        pg_dir = render.PG_DIR
        self.add(Spec("Postgres", Hardened(
            service="postgres", tier="data", image=s.image("postgres"), user="999:999",
            memory_bytes=s.memory_bytes("postgres"),
            healthcheck=["CMD", "pg_isready", "-h", "/var/run/postgresql", "-p", str(lab.ports.postgres),
                         "-U", "postgres"],
            networks=[(ctx.nets["data"], ["postgres"])],
            envs=["POSTGRES_PASSWORD_FILE=/run/secrets/postgres_password", "PGDATA=/var/lib/postgresql/data/pgdata",
                  f"PGPORT={lab.ports.postgres}"],
            command=["postgres", "-c", f"config_file={pg_dir}/seclab.conf", "-c", f"hba_file={pg_dir}/pg_hba.conf",
                     "-c", f"ident_file={pg_dir}/pg_ident.conf"],
            tmpfs={"/tmp": TMPFS_OPTS, "/var/run/postgresql": "rw,noexec,nosuid,nodev,size=1m,mode=1777"}),
            uid=999, gid=999, volumes={"data": "/var/lib/postgresql/data"},
            files=[*tls_files(s, "postgres", "postgres", crl=True),
                   *tree_files(render.postgres_files(lab), "postgres", pg_dir),
                   *(ctx.secret_file(f, k) for f, k in (
                       ("postgres_password", "postgres"), ("db_owner_password", "db-owner"),
                       ("db_app_password", "db-app"), ("db_monitor_password", "db-monitor"),
                       ("keycloak_db_password", "keycloak-db"))),
                   # executable (0500): the entrypoint runs it instead of sourcing it into its own shell
                   File("10-seclab.sh", "/docker-entrypoint-initdb.d/10-seclab.sh", content=render.pg_init_sh(lab),
                        mode="0500")]))

    def _redis(self) -> None:
        ctx, s, lab = self.ctx, self.ctx.s, self.ctx.lab
        # seclab.conf and seclab.acl: datastores/redis/ (TLS only, one ACL user per component).
        redis_acl = pulumi.Output.all(**{u: sha256(ctx.pw[f"redis-{u}"]) for u in ctx.redis_users}).apply(
            lambda h: render.redis_acl(lab, dict(h)))
        self.add(Spec("Redis", Hardened(
            service="redis", tier="data", image=s.image("redis"), user="999:999", memory_bytes=s.memory_bytes("redis"),
            # TLS-only with client certificates: a TCP connect is the honest in-container probe.
            healthcheck=["CMD", "bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{lab.ports.redis}"],
            networks=[(ctx.nets["data"], ["redis"])], command=["redis-server", "/etc/seclab/redis.conf"]),
            uid=999, gid=999, volumes={"data": "/data"},
            files=[*tls_files(s, "redis", "redis"),
                   File("redis.conf", "/etc/seclab/redis.conf", content=render.redis_conf(lab)),
                   File("users.acl", "/run/secrets/users.acl", content=pulumi.Output.secret(redis_acl), secret=True)]))


class Logging(Part):
    """The log search engine, its mTLS gateway, the shipper and the keeper: the logsearch role's engine
    (the same OpenSearch archive and ingest jars, iac/images/logsearch.Dockerfile), its templates
    (iac/render.py logsearch_*) and logsearch/ (index template, pipelines, retention) run as natively."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.v = render.logsearch_vars(ctx.lab)
        heap_mb = int(self.v["logsearch_heap"][:-1]) * (1024 if self.v["logsearch_heap"].endswith("g") else 1)
        # As the role checks the heap against the host, here against the container's limit (CIS 5.10).
        if heap_mb * 2 > ctx.s.memory_mb["logsearch"]:
            raise ValueError(f"logging.heap {self.v['logsearch_heap']} needs memoryMb.logsearch >= {heap_mb * 2}")
        self.image = docker.Image(
            "logsearch-image", image_name=f"{ctx.s.prefix}/logsearch:{ctx.lab.name}-{self.v['logsearch_version']}",
            build=docker.DockerBuildArgs(context=str(IAC_DIR.parent), platform="linux/amd64",
                                         dockerfile=str(IAC_DIR / "images" / "logsearch.Dockerfile"),
                                         args=render.logsearch_build_args(ctx.lab)),
            skip_push=True, opts=pulumi.ResourceOptions(parent=self))
        self._engine()
        self._gateway()
        self._shipper()
        self._keeper()
        self.done()

    def pki(self, leaf: str, ca: bool = True) -> list[File]:
        """A leaf at its native pki/layout.py path (the role's templates name those paths)."""
        root, t = self.v["logsearch_pki_dir"], self.ctx.s.tls(leaf)
        files = [File(f"{leaf}.chain.crt", f"{root}/certs/{leaf}.chain.crt", source=t.cert, public=True),
                 File(f"{leaf}.key", f"{root}/private/{leaf}.key", source=t.key, secret=True)]
        return files + ([File("ca-bundle.crt", f"{root}/ca/ca-bundle.crt", source=t.ca, public=True)] if ca else [])

    def _engine(self) -> None:
        ctx, v = self.ctx, self.v
        conf, module = v["logsearch_conf_dir"], f"{v['logsearch_home']}/current/modules/ingest-common"
        self.add(Spec("LogSearch", Hardened(
            service="logsearch", tier="data", image=self.image.image_name, user="10300:10300",
            memory_bytes=ctx.s.memory_bytes("logsearch"), start_period="180s",
            healthcheck=["CMD", "curl", "-fsS", "-o", "/dev/null",
                         f"http://127.0.0.1:{v['logsearch_engine_port']}/_cluster/health?wait_for_status=yellow"],
            networks=[(ctx.nets["data"], [render.LOGSEARCH_HOST])],
            command=[f"{v['logsearch_home']}/current/bin/opensearch"],
            envs=[f"OPENSEARCH_TMPDIR={v['logsearch_tmp_dir']}"]),
            uid=10300, gid=10300,
            volumes={"data": v["logsearch_data_dir"], "tmp": v["logsearch_tmp_dir"], "logs": v["logsearch_log_dir"]},
            files=[*(File(f"engine/{n}", f"{conf}/{n}", content=c) for n, c in render.logsearch_engine_files(ctx.lab).items()),
                   File("plugin-descriptor.properties", f"{module}/plugin-descriptor.properties",
                        content=render.logsearch_descriptor(ctx.lab), public=True)]))

    def _gateway(self) -> None:
        ctx, v = self.ctx, self.v
        # A sidecar in the engine's network namespace: the engine stays on its loopback (the role's
        # opensearch.yml unchanged) and the gateway is the only way in, as natively.
        self.add(Spec("LogSearchGateway", Hardened(
            service="logsearch-gateway", tier="data", image=self.image.image_name, user="10300:10300",
            memory_bytes=ctx.s.memory_bytes("logsearch-gateway"), networks=[],
            network_mode=f"container:{ctx.s.prefix}-logsearch",
            healthcheck=["CMD", "bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{v['logsearch_gateway_port']}"],
            command=["/usr/sbin/nginx", "-c", v["logsearch_gateway_conf"]],
            tmpfs={"/tmp": TMPFS_OPTS, "/run": TMPFS_OPTS, v["logsearch_gateway_tmp_dir"]: TMPFS_OPTS}),
            uid=10300, gid=10300, volumes={"logs": v["logsearch_log_dir"]},
            files=[File("gateway.conf", v["logsearch_gateway_conf"], content=render.logsearch_gateway_conf(ctx.lab)),
                   *self.pki("logsearch"),
                   File("crl.pem", f"{v['logsearch_pki_dir']}/crl/crl.pem", source=ctx.s.crl(), public=True)]),
            depends=("logsearch",))

    def _shipper(self) -> None:
        ctx, v = self.ctx, self.v
        self.add(Spec("LogShipper", Hardened(
            service="logshipper", tier="data", image=self.image.image_name, user="10302:10302", groups=["10101"],
            memory_bytes=ctx.s.memory_bytes("logshipper"),
            healthcheck=["CMD-SHELL", f"find {v['logsearch_stats_file']} -mmin -2 | grep -q ."],
            networks=[(ctx.nets["data"], ["logshipper"])],
            command=["/usr/sbin/rsyslogd", "-n", "-f", v["logsearch_shipper_conf"], "-i", "/run/seclab-logshipper.pid"],
            tmpfs={"/tmp": TMPFS_OPTS, "/run": TMPFS_OPTS},
            # The edge's logs (group 10101), read-only at paths.logs: the role's source paths unchanged.
            mounts=[docker.ContainerMountArgs(type="volume", source=ctx.logs_edge.name, target=ctx.lab.paths.logs,
                                              read_only=True)]),
            uid=10302, gid=10302,
            volumes={"work": v["logsearch_shipper_work_dir"], "logs": render.SHIPPER_LOG_DIR},
            files=[File("rsyslog.conf", v["logsearch_shipper_conf"], content=render.logsearch_shipper_conf(ctx.lab)),
                   *self.pki("log-shipper")]),
            depends=("logsearch-gateway",))

    def _keeper(self) -> None:
        ctx, v = self.ctx, self.v
        prefix, gw = v["logsearch_index_prefix"], f"https://{render.LOGSEARCH_HOST}:{v['logsearch_gateway_port']}"
        textfile = "/var/lib/seclab-keeper/seclab_logsearch.prom"
        keeper_tmpfs = f"{TMPFS_OPTS},uid=10001,gid=10001,mode=0750"  # recomputed every pass: no volume
        # `python -m logsearch apply` (logsearch/resources: the index template and pipelines), then the
        # keeper (retention from lab.yml, shipping metrics), with the role's arguments.
        common = f"--lab /etc/seclab/lab.json --prefix {prefix} --gateway-url {gw}"
        self.add(Spec("LogSearchKeeper", Hardened(
            service="logsearch-keeper", tier="data", image=ctx.image_name("app"), user="10001:10001",
            groups=["10302"], memory_bytes=ctx.s.memory_bytes("logsearch-keeper"),
            healthcheck=["CMD-SHELL", f"find {textfile} -mmin -2 | grep -q ."],
            networks=[(ctx.nets["data"], ["logsearch-keeper"])],
            entrypoints=["/bin/bash"], tmpfs={"/tmp": TMPFS_OPTS, str(Path(textfile).parent): keeper_tmpfs},
            command=["-c", (f"until python -m logsearch apply {common}; do sleep 5; done; "
                            f"exec python -m logsearch keeper {common} --stats-file {v['logsearch_stats_file']} "
                            f"--action seclab_engine --textfile {textfile} --interval {v['logsearch_keeper_interval']}")],
            # Read-only: the shipper's impstats counters (its work volume, group 10302).
            mounts=[docker.ContainerMountArgs(type="volume", source=f"{ctx.s.prefix}-logshipper-work",
                                              target=v["logsearch_shipper_work_dir"], read_only=True)]),
            uid=10001, gid=10001,
            files=[File("lab.json", "/etc/seclab/lab.json", content=render.lab_json(ctx.lab)),
                   *self.pki("log-reader")]),
            depends=("logsearch-gateway", "logshipper"))


def app_envs(ctx: Context, worker: bool = False) -> list[str]:
    """The app's settings: the names of playbooks/roles/app/templates/app.env.j2 (+ the worker role's
    environment), values for containers. Secrets only as *_FILE paths."""
    lab, app_d, worker_d = ctx.lab, ctx.app_d, ctx.worker_d
    envs = {
        "SECLAB_LAB_FILE": "/etc/seclab/lab.json",
        "SECLAB_DB_HOST": "postgres",
        "SECLAB_DB_PORT": lab.ports.postgres,
        "SECLAB_DB_NAME": app_d["app_db_name"],
        "SECLAB_DB_USER": app_d["app_db_user"],
        "SECLAB_DB_PASSWORD_FILE": "/run/secrets/db_app_password",
        "SECLAB_DB_OWNER_USER": app_d["app_db_owner_user"],
        # As natively, the API cannot read it: the file is mounted into the db-sync job only.
        "SECLAB_DB_OWNER_PASSWORD_FILE": "/run/secrets/db_owner_password",
        "SECLAB_DB_SSLMODE": app_d["app_db_sslmode"],
        "SECLAB_DB_SSLROOTCERT": "/run/tls/ca.crt",
        "SECLAB_DB_SSLCERT": "/run/tls/db-client.crt",
        "SECLAB_DB_SSLKEY": "/run/tls/db-client.key",
        # Per-tenant login roles (app/db/pools.py): passwords derived from this key, as natively.
        "SECLAB_DB_TENANT_KEY_FILE": "/run/secrets/db_tenant_key",
        "SECLAB_DB_TENANT_POOL_MAX": app_d["app_db_tenant_pool_max"],
        "SECLAB_DB_TENANT_POOLS_MAX": app_d["app_db_tenant_pools_max"],
        "SECLAB_DB_TENANT_POOL_IDLE_S": app_d["app_db_tenant_pool_idle_s"],
        "SECLAB_DB_TENANT_CONNECTION_LIMIT": app_d["app_db_tenant_connection_limit"],
        "SECLAB_REDIS_URL": f"rediss://redis:{lab.ports.redis}/0",
        "SECLAB_REDIS_CA_FILE": "/run/tls/ca.crt",
        "SECLAB_REDIS_CERT_FILE": "/run/tls/redis-client.crt",
        "SECLAB_REDIS_KEY_FILE": "/run/tls/redis-client.key",
        "SECLAB_REDIS_USER": worker_d["worker_redis_user"] if worker else app_d["app_redis_user"],
        "SECLAB_REDIS_PASSWORD_FILE": "/run/secrets/redis_password",
        # One Redis container on this engine, no sentinels yet (docs/durability.md "Redis failover"):
        # empty = the URL's host directly.
        "SECLAB_REDIS_SENTINELS": "",
        "SECLAB_REDIS_MASTER_NAME": app_d["app_redis_master_name"],
        "SECLAB_OIDC_ISSUER": lab.issuer,
        "SECLAB_OIDC_AUDIENCE": lab.identity.api_audience,
        "SECLAB_OIDC_JWKS_URL": (f"http://idp:{lab.ports.idp}/realms/{lab.identity.realm}"
                                 "/protocol/openid-connect/certs"),
        "SECLAB_OIDC_CA_FILE": "/run/tls/ca.crt",
        "SECLAB_TRUSTED_PROXIES": ctx.s.edge_app_ip,
        "SECLAB_PII_KEY_FILE": "/run/secrets/pii_key",
        "SECLAB_LOG_LEVEL": app_d["app_log_level"],
        # The lab-admin events view: the log search gateway sidecar on the data network (Logging).
        "SECLAB_LOGSEARCH_URL": (f"https://{render.LOGSEARCH_HOST}:{lab.ports.logsearch}"
                                 if lab.logging.engine == "opensearch" else ""),
        "SECLAB_LOGSEARCH_CA_FILE": "/run/tls/ca.crt",
        "SECLAB_LOGSEARCH_CERT_FILE": "/run/tls/log-search.crt",
        "SECLAB_LOGSEARCH_KEY_FILE": "/run/tls/log-search.key",
    }
    if worker:
        envs.update({
            "SECLAB_LLM_CANARY_FILE": "/run/secrets/llm_canary",
            # Mounted only when stack config seclab:openaiApiKey is set; else OpenAI is left out.
            "SECLAB_OPENAI_API_KEY_FILE": "/run/secrets/openai_api_key",
            "SECLAB_LLAMA_API_KEY_FILE": "/run/secrets/llama_api_key",
            "SECLAB_WORKER_MAX_RETRIES": worker_d["worker_max_retries"],
            "SECLAB_WORKER_SWEEP_OLDER_THAN_S": worker_d["worker_sweep_older_than_s"],
            "SECLAB_WORKER_SWEEP_INTERVAL_S": worker_d["worker_sweep_interval_s"],
        })
    return [f"{k}={v}" for k, v in envs.items()]


def db_client_files(ctx: Context) -> list[File]:
    # The API and the worker log in as seclab_app: its certificate (CN = role, clientcert=verify-full).
    return [File("lab.json", "/etc/seclab/lab.json", content=render.lab_json(ctx.lab)),
            *tls_files(ctx.s, ctx.pg_roles["app_role"], "db-client")]


class AppCode(Part):
    """The app's image run as a service (API or worker): DB and Redis clients, its secrets, its env."""

    def __init__(self, ctx: Context, pii_key_b64: pulumi.Output[str]) -> None:
        super().__init__(ctx)
        self.pii_key_b64 = pii_key_b64

    def app_spec(self, kind: str, service: str, redis_leaf: str, redis_key: str, command: list[str],
                 health: list[str], files: list[File], worker: bool, volumes: dict[str, str] | None = None) -> Spec:
        ctx, s = self.ctx, self.ctx.s
        files = [*db_client_files(ctx), *tls_files(s, redis_leaf, "redis-client", ca=False),
                 ctx.secret_file("db_app_password", "db-app"), ctx.secret_file("db_tenant_key", "db-tenant-key"),
                 File("redis_password", "/run/secrets/redis_password", content=ctx.secret(redis_key), secret=True),
                 File("pii_key", "/run/secrets/pii_key", content=self.pii_key_b64, secret=True), *files]
        return Spec(kind, Hardened(
            service=service, tier="app", image=ctx.image_name("app"), user="10001:10001",
            memory_bytes=s.memory_bytes(service), healthcheck=health,
            networks=[(ctx.nets["app"], [service]), (ctx.nets["data"], [service])],
            envs=app_envs(ctx, worker), command=command,
            mounts=[docker.ContainerMountArgs(type="volume", source=ctx.logs_app.name, target=render.LOG_DIR)]),
            uid=10001, gid=10001, files=files, volumes=volumes or {})


class App(AppCode):
    """The chat API and its one-shot database job (tenant roles, schemas, grants)."""

    def __init__(self, ctx: Context, pii_key_b64: pulumi.Output[str]) -> None:
        super().__init__(ctx, pii_key_b64)
        lab, s = ctx.lab, ctx.s
        # Tenant roles, schemas and grants (`python -m app.db.admin sync`, as natively): a one-shot job,
        # the only container that holds the schema owner's password.
        self.add(Spec("DbSync", Hardened(
            service="db-sync", tier="data", image=ctx.image_name("app"), user="10001:10001",
            memory_bytes=s.memory_bytes("db-sync"), healthcheck=["CMD", "true"],
            networks=[(ctx.nets["data"], ["db-sync"])], envs=app_envs(ctx),
            command=["python", "-m", "app.db.admin", "sync"], job=True),
            uid=10001, gid=10001, files=[*db_client_files(ctx), ctx.secret_file("db_owner_password", "db-owner")]),
            depends=("postgres",))
        # uvicorn as the app role runs it: mTLS (CERT_REQUIRED = 2), only the edge may set X-Forwarded-For.
        self.add(self.app_spec(
            "App", "app", "app-redis", f"redis-{ctx.app_d['app_redis_user']}",
            ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", str(lab.ports.app), "--no-server-header",
             "--proxy-headers", "--forwarded-allow-ips", s.edge_app_ip, "--workers", str(ctx.app_d["app_workers"]),
             "--ssl-keyfile", "/run/tls/app.key", "--ssl-certfile", "/run/tls/app.crt",
             "--ssl-ca-certs", "/run/tls/ca.crt", "--ssl-cert-reqs", "2"],
            # mTLS means an in-container probe has no client cert: a TCP connect is the honest check.
            ["CMD", "python", "-c", f"import socket; socket.create_connection(('127.0.0.1', {lab.ports.app}), 3)"],
            [*tls_files(s, "app", "app"), *tls_files(s, "log-search", "log-search", ca=False)], worker=False), depends=("postgres", "redis", "db-sync"))
        self.done()


class Worker(AppCode):
    """The Celery worker (with beat): generation, sweeps, the dead-letter stream."""

    def __init__(self, ctx: Context, pii_key_b64: pulumi.Output[str], canary: pulumi.Output[str]) -> None:
        super().__init__(ctx, pii_key_b64)
        s, wd = ctx.s, ctx.worker_d
        files = [File("llm_canary", "/run/secrets/llm_canary", content=canary, secret=True),
                 ctx.secret_file("llama_api_key", "llama-api-key")]
        if s.openai_api_key is not None:
            files.append(File("openai_api_key", "/run/secrets/openai_api_key", content=s.openai_api_key,
                              secret=True))
        state = "/var/lib/seclab/worker"
        self.add(self.app_spec(
            "Worker", "worker", "worker", f"redis-{wd['worker_redis_user']}",
            ["celery", "-A", "app.worker.celery_app", "worker", "--pool", "prefork",
             "--concurrency", str(wd["worker_concurrency"]), "--beat", "--schedule",
             f"{state}/celerybeat-schedule", "--loglevel", str(wd["worker_loglevel"]), "-n", "worker@%h"],
            ["CMD-SHELL", "celery -A app.worker.celery_app inspect ping -d worker@$HOSTNAME --timeout 5"],
            files, worker=True, volumes={"state": state}), depends=("postgres", "redis", "db-sync"))
        self.done()


class Model(Part):
    """The llama.cpp server: as natively, HTTP with an API key on the app network (lab.json points the
    llama provider at http://llama:<port>/v1); the key reaches the process env from its file only."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        s, port = ctx.s, ctx.lab.ports.llama
        self.add(Spec("Llama", Hardened(
            service="llama", tier="app", image=ctx.image_name("llama"), user="10002:10002",
            memory_bytes=s.memory_bytes("llama"),
            healthcheck=["CMD", "python", "-c", f"import socket; socket.create_connection(('127.0.0.1', {port}), 3)"],
            networks=[(ctx.nets["app"], ["llama"])],
            entrypoints=["/bin/bash"],
            command=wrapper({"API_KEY": "/run/secrets/llama_api_key"},
                            f"python -m llama_cpp.server --model /models/model.gguf --host 0.0.0.0 --port {port}")),
            uid=10002, gid=10002, files=[ctx.secret_file("llama_api_key", "llama-api-key")],
            repo_binds=[(s.llama_model, "/models/model.gguf")]))
        self.done()


class Identity(Part):
    """Keycloak with the lab's realm, and the lab users' generated credentials for the operator."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.users_dir = Path(ctx.lab.paths.secrets) / "users"
        self._keycloak(self._realm_json())
        self.done()

    def _realm_json(self) -> pulumi.Output[str]:
        """Lab users' passwords, lab-admin TOTP seeds, the probe client's secret: generated here (Pulumi
        secrets) as the secrets role and seclab/keycloak/provision.py do natively, put into the realm
        export, and copied to <paths.secrets>/users/ (0600) where `lab token` reads them."""
        lab = self.ctx.lab
        moved = pulumi.ResourceOptions(parent=self, aliases=MOVED)
        user_pw = {u.username: random.RandomPassword(
            f"user-{u.username}-password", length=24, special=True, override_special="-_.+=",
            min_upper=2, min_lower=2, min_numeric=2, min_special=2, opts=moved) for u in lab.users}
        otp_seed = {u.username: random.RandomPassword(f"user-{u.username}-totp", length=20, special=False, opts=moved)
                    for u in lab.users if "lab-admin" in u.roles}
        probe_secret = random.RandomPassword("probe-client-secret", length=43, special=False, opts=moved)
        for name, value, suffix in [*((u, p.result, "password") for u, p in user_pw.items()),
                                    *((u, p.result, "totp") for u, p in otp_seed.items())]:
            HostFile(f"operator-{name}.{suffix}", path=str(self.users_dir / f"{name}.{suffix}"), uid=os.getuid(),
                     gid=os.getgid(), mode="0600", content=pulumi.Output.secret(value),
                     opts=pulumi.ResourceOptions(parent=self, aliases=MOVED, additional_secret_outputs=["content"]))
        return pulumi.Output.secret(pulumi.Output.all(
            users=pulumi.Output.all(**{u: p.result for u, p in user_pw.items()}),
            otp=pulumi.Output.all(**{u: p.result for u, p in otp_seed.items()}),
            probe=probe_secret.result,
        ).apply(lambda v: render.realm_export(lab, v["users"], v["otp"], {PROBE_CLIENT_ID: v["probe"]})))

    def _keycloak(self, realm_json: pulumi.Output[str]) -> None:
        ctx, s, lab, roles = self.ctx, self.ctx.s, self.ctx.lab, self.ctx.pg_roles
        kc_tls = s.tls(roles["keycloak_role"])
        kc_db_url = (f"jdbc:postgresql://postgres:{lab.ports.postgres}/{roles['keycloak_db']}?sslmode=verify-full"
                     "&sslrootcert=/run/tls/ca.crt&sslcert=/run/tls/db-client.crt&sslkey=/run/tls/db-client.pk8")
        self.add(Spec("Keycloak", Hardened(
            service="idp", tier="app", image=ctx.image_name("keycloak"), user="1000:0", memory_bytes=s.memory_bytes("idp"),
            start_period="120s",
            # ubi9-micro has no curl: a TCP probe of the management port (health endpoints live there).
            healthcheck=["CMD-SHELL", "exec 3<>/dev/tcp/127.0.0.1/9000"],
            networks=[(ctx.nets["app"], ["idp", "keycloak"]), (ctx.nets["data"], ["idp"])],
            entrypoints=["/bin/bash"],
            command=wrapper({"KC_DB_PASSWORD": "/run/secrets/db_password",
                             "KC_BOOTSTRAP_ADMIN_PASSWORD": "/run/secrets/admin_password"},
                            "/opt/keycloak/bin/kc.sh start --optimized --import-realm"),
            envs=["KC_DB_URL=" + kc_db_url, f"KC_DB_USERNAME={roles['keycloak_role']}",
                  "KC_BOOTSTRAP_ADMIN_USERNAME=admin",
                  # The issuer base (tokens carry iss = lab.issuer), strict, as the keycloak role sets it.
                  f"KC_HOSTNAME={lab.issuer.removesuffix(f'/realms/{lab.identity.realm}')}",
                  "KC_HOSTNAME_STRICT=true", "KC_HOSTNAME_BACKCHANNEL_DYNAMIC=true",
                  f"KC_HOSTNAME_ADMIN=https://{lab.edge.host_names[0]}:{s.ops_port}",
                  "KC_PROXY_HEADERS=xforwarded", f"KC_PROXY_TRUSTED_ADDRESSES={s.edge_app_ip}/32",
                  # edge/nginx.conf.j2 proxies /realms/ over HTTP to ports.idp (as natively); the admin
                  # console goes over TLS (operator port -> https://idp:8443).
                  "KC_HTTP_ENABLED=true", f"KC_HTTP_PORT={lab.ports.idp}", f"KC_HTTPS_PORT={render.KEYCLOAK_HTTPS}",
                  "KC_HTTPS_CERTIFICATE_FILE=/run/tls/idp.crt", "KC_HTTPS_CERTIFICATE_KEY_FILE=/run/tls/idp.key",
                  "KC_HTTPS_PROTOCOLS=TLSv1.3,TLSv1.2"]),
            uid=1000, gid=0, volumes={"data": "/opt/keycloak/data"},
            files=[*tls_files(s, "idp", "idp"),
                   # Keycloak's own PostgreSQL client certificate (CN = keycloak); pgjdbc reads a PKCS#8 DER key.
                   File("db-client.crt", "/run/tls/db-client.crt", source=kc_tls.cert, public=True),
                   File("db-client.pk8", "/run/tls/db-client.pk8", source=kc_tls.key, secret=True,
                        convert="pkcs8-der"),
                   ctx.secret_file("db_password", "keycloak-db"), ctx.secret_file("admin_password", "keycloak-admin"),
                   # With credentials: 0600 like labdef.realm.write_realm_export on the native engine.
                   File("realm.json", f"/opt/keycloak/data/import/{lab.identity.realm}-realm.json", content=realm_json,
                        secret=True, mode="0600")]), depends=("postgres",))


class Monitoring(Part):
    """Prometheus, Alertmanager, the exporters and Grafana (monitoring/render.py: the same prometheus.yml,
    alertmanager.yml and rules as natively)."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self._prometheus_and_alertmanager()
        self._exporters()
        self._grafana()
        self.done()

    def _prometheus_and_alertmanager(self) -> None:
        ctx, s, lab = self.ctx, self.ctx.s, self.ctx.lab
        mon = render.monitoring_files(lab)
        am_file = "alertmanager.yml"
        self.add(Spec("Prometheus", Hardened(
            service="prometheus", tier="app", image=s.image("prometheus"), user="65534:65534",
            memory_bytes=s.memory_bytes("prometheus"),
            healthcheck=["CMD", "wget", "-qO-", f"http://127.0.0.1:{lab.ports.prometheus}/-/healthy"],
            networks=[(ctx.nets["app"], ["prometheus"]), (ctx.nets["data"], ["prometheus"])],
            command=[f"--config.file={render.PROM_DIR}/prometheus.yml", "--storage.tsdb.path=/prometheus",
                     f"--web.listen-address=:{lab.ports.prometheus}",
                     "--web.external-url=/prometheus/", "--web.route-prefix=/"]),
            uid=65534, gid=65534, volumes={"data": "/prometheus"},
            files=[*tree_files({k: v for k, v in mon.items() if k != am_file}, "prometheus", render.PROM_DIR),
                   *tls_files(s, "prometheus-scraper", "scraper")]))
        # Alerts reach the webhook named in alertmanager.yml (monitoring_webhook_url); see docs/docker.md.
        self.add(Spec("Alertmanager", Hardened(
            service="alertmanager", tier="app", image=s.image("alertmanager"), user="65534:65534",
            memory_bytes=s.memory_bytes("alertmanager"),
            healthcheck=["CMD", "wget", "-qO-", f"http://127.0.0.1:{lab.ports.alertmanager}/-/healthy"],
            networks=[(ctx.nets["app"], ["alertmanager"])],
            command=["--config.file=/etc/seclab/alertmanager/alertmanager.yml", "--storage.path=/alertmanager",
                     f"--web.listen-address=:{lab.ports.alertmanager}", "--cluster.listen-address="]),
            uid=65534, gid=65534, volumes={"data": "/alertmanager"},
            files=tree_files({am_file: mon[am_file]}, "alertmanager", "/etc/seclab/alertmanager")))

    def _exporter_table(self) -> list[tuple[str, str, pulumi.Input[str], str, str, list[str], int, list[str],
                                            list[File]]]:
        ctx, s, lab, roles = self.ctx, self.ctx.s, self.ctx.lab, self.ctx.pg_roles
        redis_user = next(u for u in ctx.redis_users
                          if u not in (ctx.app_d["app_redis_user"], ctx.worker_d["worker_redis_user"]))
        pg_uri = (f"postgres:{lab.ports.postgres}/{roles['monitor_db']}?sslmode=verify-full"
                  "&sslrootcert=/run/tls/ca.crt&sslcert=/run/tls/client.crt&sslkey=/run/tls/client.key")
        redis_uri = f"rediss://redis:{lab.ports.redis}"
        return [
            ("NodeExporter", "node-exporter", s.image("node_exporter"), "65534:65534", "app",
             ["--path.procfs=/host/proc", "--path.sysfs=/host/sys", "--no-collector.wifi",
              f"--web.listen-address=:{lab.ports.node_exporter}"], lab.ports.node_exporter, [], []),
            ("PostgresExporter", "postgres-exporter", s.image("postgres_exporter"), "65534:65534", "data",
             [f"--web.listen-address=:{lab.ports.postgres_exporter}"], lab.ports.postgres_exporter,
             [f"DATA_SOURCE_URI={pg_uri}", f"DATA_SOURCE_USER={roles['monitor_role']}",
              "DATA_SOURCE_PASS_FILE=/run/secrets/db_password"],
             # Its own client certificate, CN = seclab_monitor = the login role (clientcert=verify-full).
             [ctx.secret_file("db_password", "db-monitor"), *tls_files(s, roles["monitor_role"], "client")]),
            ("RedisExporter", "redis-exporter", s.image("redis_exporter"), "59000:59000", "data",
             [f"--redis.addr={redis_uri}", f"--redis.user={redis_user}",
              "--redis.password-file=/run/secrets/redis_passwords.json", "--tls-ca-cert-file=/run/tls/ca.crt",
              "--tls-client-cert-file=/run/tls/client.crt", "--tls-client-key-file=/run/tls/client.key",
              f"--web.listen-address=:{lab.ports.redis_exporter}"], lab.ports.redis_exporter, [],
             [File("redis_passwords.json", "/run/secrets/redis_passwords.json", secret=True,
                   content=pulumi.Output.secret(ctx.pw[f"redis-{redis_user}"].result.apply(
                       lambda p: json.dumps({redis_uri: p})))),
              *tls_files(s, "prometheus-scraper", "client")]),
            ("NginxExporter", "nginx-exporter", ctx.image_name("nginx-exporter"), "65534:65534", "app",
             [f"--nginx.scrape-uri=http://edge:{render.EDGE_STATUS}/stub_status",
              f"--web.listen-address=:{lab.ports.nginx_exporter}"], lab.ports.nginx_exporter, [], []),
        ]

    def _exporters(self) -> None:
        nets = self.ctx.nets
        for kind, name, img, user, net, cmd, port, envs, files in self._exporter_table():
            uid, gid = (int(x) for x in user.split(":"))
            networks = [(nets[net], [name])] + ([(nets["app"], [name])] if net == "data" else [])
            self.add(Spec(kind, Hardened(
                service=name, tier="data" if net == "data" else "app", image=img, user=user,
                memory_bytes=self.ctx.s.memory_bytes(name),
                healthcheck=["CMD", "wget", "-qO-", f"http://127.0.0.1:{port}/metrics"],
                networks=networks, command=cmd, envs=envs,
                mounts=[] if name != "node-exporter" else [
                    docker.ContainerMountArgs(type="bind", source="/proc", target="/host/proc", read_only=True),
                    docker.ContainerMountArgs(type="bind", source="/sys", target="/host/sys", read_only=True)]),
                uid=uid, gid=gid, files=files))

    def _grafana(self) -> None:
        ctx, s = self.ctx, self.ctx.s
        self.add(Spec("Grafana", Hardened(
            service="grafana", tier="app", image=s.image("grafana"), user="472:0", memory_bytes=s.memory_bytes("grafana"),
            healthcheck=["CMD", "wget", "-qO-", "http://127.0.0.1:3000/api/health"],
            networks=[(ctx.nets["app"], ["grafana"])],
            envs=["GF_SECURITY_ADMIN_PASSWORD__FILE=/run/secrets/admin_password", "GF_SECURITY_ADMIN_USER=admin",
                  f"GF_SERVER_ROOT_URL={ops_url(s)}/grafana/",
                  "GF_SERVER_SERVE_FROM_SUB_PATH=true", "GF_USERS_ALLOW_SIGN_UP=false",
                  "GF_AUTH_ANONYMOUS_ENABLED=false", "GF_SECURITY_COOKIE_SECURE=true",  # ASVS 3.4.1
                  "GF_SECURITY_DISABLE_GRAVATAR=true", "GF_ANALYTICS_REPORTING_ENABLED=false",
                  "GF_ANALYTICS_CHECK_FOR_UPDATES=false", "GF_PATHS_PROVISIONING=/etc/seclab/grafana/provisioning"]),
            uid=472, gid=0, volumes={"data": "/var/lib/grafana"},
            files=[ctx.secret_file("admin_password", "grafana-admin")],
            repo_binds=[(str(IAC_DIR / "grafana" / "provisioning"), "/etc/seclab/grafana/provisioning"),
                        (str(IAC_DIR / "grafana" / "dashboards"), "/etc/seclab/grafana/dashboards")]))


def ops_url(s: Settings) -> str:
    """The operator consoles' base URL (loopback-published port of the edge)."""
    return f"https://{s.lab.edge.host_names[0]}:{s.ops_port}"


def pki_layout_files(s: Settings, leaves: dict[str, str]) -> list[File]:
    """Leaf files at their pki/layout.py paths under render.EDGE_PKI_DIR (what edge/*.j2 references)."""
    root = render.EDGE_PKI_DIR
    files: list[File] = []
    for leaf in leaves:
        t = s.tls(leaf)
        files += [File(f"pki/certs/{leaf}.chain.crt", f"{root}/certs/{leaf}.chain.crt", source=t.cert, public=True),
                  File(f"pki/private/{leaf}.key", f"{root}/private/{leaf}.key", source=t.key, secret=True)]
    files += [File("pki/ca/ca-bundle.crt", f"{root}/ca/ca-bundle.crt", source=s.tls("edge").ca, public=True),
              File("pki/crl/crl.pem", f"{root}/crl/crl.pem", source=s.crl(), public=True)]
    return files


class Edge(Part):
    """nginx + ModSecurity (edge/render.py + waf_rules/render.py: the templates the Ansible edge and waf
    roles use); the only container that publishes ports."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        s, lab = ctx.s, ctx.lab
        https, http = lab.ports.edge_https, lab.ports.edge_http
        self.add(Spec("Edge", Hardened(
            service="edge", tier="edge", image=ctx.image_name("edge"), user="10101:10101",
            memory_bytes=s.memory_bytes("edge"),
            healthcheck=["CMD", "curl", "-fsS", "-o", "/dev/null", f"http://127.0.0.1:{render.EDGE_STATUS}/stub_status"],
            networks=[(ctx.nets["edge"], ["edge"]), (ctx.nets["app"], ["edge"], s.edge_app_ip)],
            command=["nginx", "-g", "daemon off;", "-c", f"{render.EDGE_CONF_DIR}/nginx.conf"],
            mounts=[docker.ContainerMountArgs(type="volume", source=ctx.logs_edge.name, target=render.LOG_DIR)],
            # Same port numbers inside and out (the template's http->https redirect names ports.edge_https);
            # a namespaced sysctl lets the non-root master bind them: no NET_BIND_SERVICE (CIS 5.3).
            sysctls={"net.ipv4.ip_unprivileged_port_start": str(min(https, http))},
            ports=[docker.ContainerPortArgs(internal=https, external=https, ip=s.publish_address),
                   docker.ContainerPortArgs(internal=http, external=http, ip=s.publish_address),
                   # operator consoles: loopback only, whatever publishAddress says
                   docker.ContainerPortArgs(internal=render.EDGE_OPS, external=s.ops_port, ip="127.0.0.1")]),
            uid=10101, gid=10101,
            files=[*tree_files(render.edge_files(lab), "nginx", render.EDGE_CONF_DIR),
                   *tree_files(render.waf_files(lab), "waf", render.WAF_CONF_DIR),
                   *pki_layout_files(s, {"edge": "server", "edge-client": "client to the app (mTLS)"})]),
            depends=("app", "idp", "grafana"))
        self.done()
