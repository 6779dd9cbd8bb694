"""The lab as Docker containers: networks, secrets, images and one component per service.

Topology (same as the Ansible engine): edge -> app (mTLS) -> PostgreSQL/Redis (TLS + client cert);
Keycloak behind the edge; Prometheus + Alertmanager + exporters; Grafana; Elasticsearch + Filebeat +
Kibana. Only the edge publishes ports, and its operator port only on the host's loopback.
Service configs come from the templates the Ansible engine renders (see iac/render.py).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pulumi
import pulumi_docker as docker
import pulumi_random as random

from seclab.realm import PROBE_CLIENT_ID

from . import render
from .config import IAC_DIR, REPO_ROOT, Settings, load_settings
from .hardening import TMPFS_OPTS, Hardened
from .hostfile import HostFile
from .services import File, Service, Spec, tls_files

NETWORKS = ("edge", "app", "data")


def _networks(settings: Settings) -> dict[str, docker.Network]:
    # data is internal: the data tier has no route out and none in except from app-tier peers
    # (CIS 5.29 spirit, ASVS 1.4.x segmentation). app keeps egress for the external AI provider.
    # app has a fixed subnet: the edge's address on it is the one proxy the app trusts.
    return {
        n: docker.Network(
            n,
            name=f"{settings.prefix}-{n}",
            internal=(n == "data"),
            driver="bridge",
            ipam_configs=[docker.NetworkIpamConfigArgs(subnet=settings.app_subnet)] if n == "app" else None,
            labels=[docker.NetworkLabelArgs(label="seclab.tier", value=n)],
        )
        for n in NETWORKS
    }


def _password(name: str) -> random.RandomPassword:
    """32 characters, alphanumeric so no shell or URL quoting issue; a Pulumi secret in state."""
    return random.RandomPassword(name, length=32, special=False)


def _sha256(p: random.RandomPassword) -> pulumi.Output[str]:
    return pulumi.Output.secret(p.result.apply(lambda v: hashlib.sha256(v.encode()).hexdigest()))


def _wrapper(exports: dict[str, str], exec_cmd: str) -> list[str]:
    """Export secrets from files into the *process* env only (not `docker inspect`), then exec."""
    lines = "; ".join(f'export {var}="$(cat {path})"' for var, path in exports.items())
    return ["/bin/bash", "-c", f"set -e; {lines}; exec {exec_cmd}"]


def _files(tree: dict[str, str], prefix: str, target_dir: str) -> list[File]:
    """Rendered files (relative path -> text) mounted one by one under `target_dir`."""
    return [File(f"{prefix}/{rel}", f"{target_dir}/{rel}", content=text) for rel, text in sorted(tree.items())]


def _pki_layout_files(s: Settings, leaves: dict[str, str]) -> list[File]:
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


def build() -> dict[str, Service]:
    """Declare every resource; returns the services by name (the tests walk them)."""
    s = load_settings()
    lab = s.lab
    nets = _networks(s)
    edge_net, app_net, data_net = nets["edge"], nets["app"], nets["data"]
    pg_roles = render.postgres_roles(lab)
    app_d = render.role_defaults("app", lab)
    worker_d = render.role_defaults("worker", lab)
    redis_users = render.redis_acl_users(lab)
    app_redis_user, worker_redis_user = app_d["app_redis_user"], worker_d["worker_redis_user"]
    exporter_redis_user = next(u for u in redis_users if u not in (app_redis_user, worker_redis_user))

    pw = {n: _password(f"{n}-password") for n in (
        "postgres", "db-owner", "db-app", "db-monitor", "keycloak-db", "keycloak-admin", "grafana-admin",
        "elastic", "kibana-es", "filebeat-es", "kibana-key", "llama-api-key", "llm-canary",
        *(f"redis-{u}" for u in redis_users))}

    def secret(key: str) -> pulumi.Output[str]:
        return pulumi.Output.secret(pw[key].result)

    # The PII mapping key: 32 random bytes as URL-safe base64, the format the secrets role writes.
    pii_key = random.RandomBytes("pii-key", length=32)
    pii_key_b64: pulumi.Output[str] = pulumi.Output.secret(pii_key.base64.apply(lambda v: v.replace("+", "-").replace("/", "_")))
    canary: pulumi.Output[str] = pulumi.Output.secret(pw["llm-canary"].result.apply(lambda v: f"SECLAB-CANARY-{v}"))

    # --- identity secrets: lab users' passwords, lab-admin TOTP seeds, the probe client's secret ------
    # Generated here (Pulumi secrets) as the secrets role and seclab/keycloak/provision.py do natively, put
    # into the realm export, and copied to <paths.secrets>/users/ (0600) where `lab token` reads them.
    user_pw = {u.username: random.RandomPassword(
        f"user-{u.username}-password", length=24, special=True, override_special="-_.+=",
        min_upper=2, min_lower=2, min_numeric=2, min_special=2) for u in lab.users}
    otp_seed = {u.username: random.RandomPassword(f"user-{u.username}-totp", length=20, special=False)
                for u in lab.users if "lab-admin" in u.roles}
    probe_secret = random.RandomPassword("probe-client-secret", length=43, special=False)
    users_dir = Path(lab.paths.secrets) / "users"
    for name, value, suffix in [*((u, p.result, "password") for u, p in user_pw.items()),
                                *((u, p.result, "totp") for u, p in otp_seed.items())]:
        HostFile(f"operator-{name}.{suffix}", path=str(users_dir / f"{name}.{suffix}"), uid=os.getuid(),
                 gid=os.getgid(), mode="0600", content=pulumi.Output.secret(value),
                 opts=pulumi.ResourceOptions(additional_secret_outputs=["content"]))
    realm_json: pulumi.Output[str] = pulumi.Output.secret(pulumi.Output.all(
        users=pulumi.Output.all(**{u: p.result for u, p in user_pw.items()}),
        otp=pulumi.Output.all(**{u: p.result for u, p in otp_seed.items()}),
        probe=probe_secret.result,
    ).apply(lambda v: render.realm_export(lab, v["users"], v["otp"], {PROBE_CLIENT_ID: v["probe"]})))

    logs_app = docker.Volume("logs-app", name=f"{s.prefix}-logs-app")
    logs_edge = docker.Volume("logs-edge", name=f"{s.prefix}-logs-edge")

    # Images built from the repository (exact base tags inside the Dockerfiles).
    def image(key: str, dockerfile: str, args: dict[str, str] | None = None) -> docker.Image:
        return docker.Image(
            f"{key}-image",
            image_name=f"{s.prefix}/{key}:{lab.name}-0.1.0",
            build=docker.DockerBuildArgs(context=str(REPO_ROOT), dockerfile=str(IAC_DIR / "images" / dockerfile),
                                         platform="linux/amd64", args=args),
            skip_push=True,
        )

    app_image = image("app", "app.Dockerfile")
    edge_image = image("edge", "edge.Dockerfile")
    llama_image = image("llama", "llama.Dockerfile")
    kc_image = image("keycloak", "keycloak.Dockerfile", {"KEYCLOAK_IMAGE": s.image("keycloak")})
    nginx_exp_image = image("nginx-exporter", "nginx-exporter.Dockerfile")

    mem = s.memory_bytes
    services: dict[str, Service] = {}

    def add(spec: Spec, depends: tuple[str, ...] = ()) -> Service:
        svc = Service(spec, s, depends_on=[services[d].container for d in depends])
        services[spec.hardened.service] = svc
        return svc

    # --- data tier -------------------------------------------------------------------------
    # seclab.conf and pg_hba.conf: playbooks/roles/postgresql/templates (hostssl + clientcert only).
    pg_dir = render.PG_DIR
    add(Spec("Postgres", Hardened(
        service="postgres", tier="data", image=s.image("postgres"), user="999:999", memory_bytes=mem("postgres"),
        healthcheck=["CMD", "pg_isready", "-h", "/var/run/postgresql", "-p", str(lab.ports.postgres),
                     "-U", "postgres"],
        networks=[(data_net, ["postgres"])],
        envs=["POSTGRES_PASSWORD_FILE=/run/secrets/postgres_password", "PGDATA=/var/lib/postgresql/data/pgdata",
              f"PGPORT={lab.ports.postgres}"],
        command=["postgres", "-c", f"config_file={pg_dir}/seclab.conf", "-c", f"hba_file={pg_dir}/pg_hba.conf",
                 "-c", f"ident_file={pg_dir}/pg_ident.conf"],
        tmpfs={"/tmp": TMPFS_OPTS, "/var/run/postgresql": "rw,noexec,nosuid,nodev,size=1m,mode=1777"}),
        uid=999, gid=999, volumes={"data": "/var/lib/postgresql/data"},
        files=[*tls_files(s, "postgres", "postgres", crl=True),
               *_files(render.postgres_files(lab), "postgres", pg_dir),
               *(File(f, f"/run/secrets/{f}", content=secret(k), secret=True) for f, k in (
                   ("postgres_password", "postgres"), ("db_owner_password", "db-owner"),
                   ("db_app_password", "db-app"), ("db_monitor_password", "db-monitor"),
                   ("keycloak_db_password", "keycloak-db"))),
               # executable (0500): the entrypoint runs it instead of sourcing it into its own shell
               File("10-seclab.sh", "/docker-entrypoint-initdb.d/10-seclab.sh", content=render.pg_init_sh(lab),
                    mode="0500")]))

    # seclab.conf and seclab.acl: playbooks/roles/redis/templates (TLS only, one ACL user per component).
    redis_acl = pulumi.Output.all(**{u: _sha256(pw[f"redis-{u}"]) for u in redis_users}).apply(
        lambda h: render.redis_acl(lab, dict(h)))
    add(Spec("Redis", Hardened(
        service="redis", tier="data", image=s.image("redis"), user="999:999", memory_bytes=mem("redis"),
        # TLS-only with client certificates: a TCP connect is the honest in-container probe.
        healthcheck=["CMD", "bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{lab.ports.redis}"],
        networks=[(data_net, ["redis"])], command=["redis-server", "/etc/seclab/redis.conf"]),
        uid=999, gid=999, volumes={"data": "/data"},
        files=[*tls_files(s, "redis", "redis"), File("redis.conf", "/etc/seclab/redis.conf", content=render.redis_conf(lab)),
               File("users.acl", "/run/secrets/users.acl", content=pulumi.Output.secret(redis_acl), secret=True)]))

    es_users = pulumi.Output.all(pw["kibana-es"].bcrypt_hash, pw["filebeat-es"].bcrypt_hash).apply(
        lambda h: render.es_users(*h))
    es_cfg = "/usr/share/elasticsearch/config"
    add(Spec("Elasticsearch", Hardened(
        service="elasticsearch", tier="data", image=s.image("elasticsearch"), user="1000:0",
        memory_bytes=mem("elasticsearch"), start_period="120s",
        healthcheck=["CMD-SHELL", ("curl -s -o /dev/null -w '%{http_code}' --cacert config/certs/ca.crt "
                     "https://localhost:9200/ | grep -qE '^(200|401)$'")],
        networks=[(data_net, ["elasticsearch"])],
        envs=["discovery.type=single-node", "xpack.security.enabled=true",
              "xpack.security.http.ssl.enabled=true",  # TLS on the REST API (ASVS 9.2.2)
              "xpack.security.http.ssl.certificate=certs/elasticsearch.crt",
              "xpack.security.http.ssl.key=certs/elasticsearch.key",
              "xpack.security.http.ssl.certificate_authorities=certs/ca.crt",
              "xpack.security.authc.realms.file.file1.order=0",
              "xpack.security.authc.realms.native.native1.order=1",
              "ELASTIC_PASSWORD_FILE=/run/secrets/elastic_password", "ES_JAVA_OPTS=-Xms1g -Xmx1g",
              "ingest.geoip.downloader.enabled=false"]),  # no phoning home from an internal network
        uid=1000, gid=0,
        # config is a volume: the entrypoint writes the keystore there at start (root fs stays read-only).
        volumes={"data": "/usr/share/elasticsearch/data", "config": es_cfg, "logs": "/usr/share/elasticsearch/logs"},
        files=[*[File(f.name, f"{es_cfg}/certs/{f.name}", source=f.source, secret=f.secret, public=f.public)
                 for f in tls_files(s, "elasticsearch", "elasticsearch")],
               File("elastic_password", "/run/secrets/elastic_password", content=secret("elastic"), secret=True),
               File("users", f"{es_cfg}/users", content=pulumi.Output.secret(es_users), secret=True),
               File("users_roles", f"{es_cfg}/users_roles", content=render.ES_USERS_ROLES),
               File("roles.yml", f"{es_cfg}/roles.yml", content=render.ES_ROLES)]))

    # --- app tier --------------------------------------------------------------------------
    def app_envs(worker: bool = False) -> list[str]:
        """The app's settings: the names of playbooks/roles/app/templates/app.env.j2 (+ the worker role's
        environment), values for containers. Secrets only as *_FILE paths."""
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
            "SECLAB_REDIS_URL": f"rediss://redis:{lab.ports.redis}/0",
            "SECLAB_REDIS_CA_FILE": "/run/tls/ca.crt",
            "SECLAB_REDIS_CERT_FILE": "/run/tls/redis-client.crt",
            "SECLAB_REDIS_KEY_FILE": "/run/tls/redis-client.key",
            "SECLAB_REDIS_USER": worker_redis_user if worker else app_redis_user,
            "SECLAB_REDIS_PASSWORD_FILE": "/run/secrets/redis_password",
            "SECLAB_OIDC_ISSUER": lab.issuer,
            "SECLAB_OIDC_AUDIENCE": lab.identity.api_audience,
            "SECLAB_OIDC_JWKS_URL": (f"http://idp:{lab.ports.idp}/realms/{lab.identity.realm}"
                                     "/protocol/openid-connect/certs"),
            "SECLAB_OIDC_CA_FILE": "/run/tls/ca.crt",
            "SECLAB_TRUSTED_PROXIES": s.edge_app_ip,
            "SECLAB_PII_KEY_FILE": "/run/secrets/pii_key",
            "SECLAB_LOG_LEVEL": app_d["app_log_level"],
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

    lab_json = render.lab_json(lab)

    def db_client_files() -> list[File]:
        # The API and the worker log in as seclab_app: its certificate (CN = role, clientcert=verify-full).
        return [File("lab.json", "/etc/seclab/lab.json", content=lab_json),
                *tls_files(s, pg_roles["app_role"], "db-client")]

    def app_spec(kind: str, service: str, redis_leaf: str, redis_key: str, command: list[str],
                 health: list[str], files: list[File], worker: bool,
                 volumes: dict[str, str] | None = None) -> Spec:
        files = [*db_client_files(), *tls_files(s, redis_leaf, "redis-client", ca=False),
                 File("db_app_password", "/run/secrets/db_app_password", content=secret("db-app"), secret=True),
                 File("redis_password", "/run/secrets/redis_password", content=secret(redis_key), secret=True),
                 File("pii_key", "/run/secrets/pii_key", content=pii_key_b64, secret=True), *files]
        return Spec(kind, Hardened(
            service=service, tier="app", image=app_image.image_name, user="10001:10001", memory_bytes=mem(service),
            healthcheck=health, networks=[(app_net, [service]), (data_net, [service])],
            envs=app_envs(worker), command=command,
            mounts=[docker.ContainerMountArgs(type="volume", source=logs_app.name, target=render.LOG_DIR)]),
            uid=10001, gid=10001, files=files, volumes=volumes or {})

    # Tenant roles, schemas and grants (`python -m app.db.admin sync`, as natively): a one-shot job,
    # the only container that holds the schema owner's password.
    add(Spec("DbSync", Hardened(
        service="db-sync", tier="data", image=app_image.image_name, user="10001:10001", memory_bytes=mem("db-sync"),
        healthcheck=["CMD", "true"], networks=[(data_net, ["db-sync"])], envs=app_envs(),
        command=["python", "-m", "app.db.admin", "sync"], job=True),
        uid=10001, gid=10001,
        files=[*db_client_files(),
               File("db_owner_password", "/run/secrets/db_owner_password", content=secret("db-owner"), secret=True)]),
        depends=("postgres",))

    # uvicorn as the app role runs it: mTLS (CERT_REQUIRED = 2), only the edge may set X-Forwarded-For.
    add(app_spec("App", "app", "app-redis", f"redis-{app_redis_user}",
                 ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", str(lab.ports.app), "--no-server-header",
                  "--proxy-headers", "--forwarded-allow-ips", s.edge_app_ip, "--workers", str(app_d["app_workers"]),
                  "--ssl-keyfile", "/run/tls/app.key", "--ssl-certfile", "/run/tls/app.crt",
                  "--ssl-ca-certs", "/run/tls/ca.crt", "--ssl-cert-reqs", "2"],
                 # mTLS means an in-container probe has no client cert: a TCP connect is the honest check.
                 ["CMD", "python", "-c", f"import socket; socket.create_connection(('127.0.0.1', {lab.ports.app}), 3)"],
                 tls_files(s, "app", "app"), worker=False), depends=("postgres", "redis", "db-sync"))

    worker_files = [File("llm_canary", "/run/secrets/llm_canary", content=canary, secret=True),
                    File("llama_api_key", "/run/secrets/llama_api_key", content=secret("llama-api-key"), secret=True)]
    if s.openai_api_key is not None:
        worker_files.append(File("openai_api_key", "/run/secrets/openai_api_key", content=s.openai_api_key,
                                 secret=True))
    state = "/var/lib/seclab/worker"
    add(app_spec("Worker", "worker", "worker", f"redis-{worker_redis_user}",
                 ["celery", "-A", "app.worker.celery_app", "worker", "--pool", "prefork",
                  "--concurrency", str(worker_d["worker_concurrency"]), "--beat", "--schedule",
                  f"{state}/celerybeat-schedule", "--loglevel", str(worker_d["worker_loglevel"]), "-n", "worker@%h"],
                 ["CMD-SHELL", "celery -A app.worker.celery_app inspect ping -d worker@$HOSTNAME --timeout 5"],
                 worker_files, worker=True, volumes={"state": state}), depends=("postgres", "redis", "db-sync"))

    # llama.cpp server: as natively, HTTP with an API key on the app network (lab.json points the
    # llama provider at http://llama:<port>/v1); the key reaches the process env from its file only.
    add(Spec("Llama", Hardened(
        service="llama", tier="app", image=llama_image.image_name, user="10002:10002", memory_bytes=mem("llama"),
        healthcheck=["CMD", "python", "-c",
                     f"import socket; socket.create_connection(('127.0.0.1', {lab.ports.llama}), 3)"],
        networks=[(app_net, ["llama"])],
        entrypoints=["/bin/bash"],
        command=_wrapper({"API_KEY": "/run/secrets/llama_api_key"},
                         f"python -m llama_cpp.server --model /models/model.gguf --host 0.0.0.0 "
                         f"--port {lab.ports.llama}")[1:]),
        uid=10002, gid=10002,
        files=[File("llama_api_key", "/run/secrets/llama_api_key", content=secret("llama-api-key"), secret=True)],
        repo_binds=[(s.llama_model, "/models/model.gguf")]))

    kc_tls = s.tls(pg_roles["keycloak_role"])
    kc_db_url = (f"jdbc:postgresql://postgres:{lab.ports.postgres}/{pg_roles['keycloak_db']}?sslmode=verify-full"
                 "&sslrootcert=/run/tls/ca.crt&sslcert=/run/tls/db-client.crt&sslkey=/run/tls/db-client.pk8")
    add(Spec("Keycloak", Hardened(
        service="idp", tier="app", image=kc_image.image_name, user="1000:0", memory_bytes=mem("idp"),
        start_period="120s",
        # ubi9-micro has no curl: a TCP probe of the management port (health endpoints live there).
        healthcheck=["CMD-SHELL", "exec 3<>/dev/tcp/127.0.0.1/9000"],
        networks=[(app_net, ["idp", "keycloak"]), (data_net, ["idp"])],
        entrypoints=["/bin/bash"],
        command=_wrapper({"KC_DB_PASSWORD": "/run/secrets/db_password",
                          "KC_BOOTSTRAP_ADMIN_PASSWORD": "/run/secrets/admin_password"},
                         "/opt/keycloak/bin/kc.sh start --optimized --import-realm")[1:],
        envs=["KC_DB_URL=" + kc_db_url, f"KC_DB_USERNAME={pg_roles['keycloak_role']}",
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
               File("db-client.pk8", "/run/tls/db-client.pk8", source=kc_tls.key, secret=True, convert="pkcs8-der"),
               File("db_password", "/run/secrets/db_password", content=secret("keycloak-db"), secret=True),
               File("admin_password", "/run/secrets/admin_password", content=secret("keycloak-admin"), secret=True),
               # With credentials: 0600 like seclab.realm.write_realm_export on the native engine.
               File("realm.json", f"/opt/keycloak/data/import/{lab.identity.realm}-realm.json", content=realm_json,
                    secret=True, mode="0600")]), depends=("postgres",))

    add(Spec("Kibana", Hardened(
        service="kibana", tier="app", image=s.image("kibana"), user="1000:0", memory_bytes=mem("kibana"),
        start_period="180s",
        healthcheck=["CMD-SHELL", ("curl -s -o /dev/null -w '%{http_code}' --cacert /run/tls/ca.crt "
                     "https://localhost:5601/kibana/api/status | grep -qE '^(200|401)$'")],
        networks=[(app_net, ["kibana"]), (data_net, ["kibana"])],
        entrypoints=["/bin/bash"],
        command=_wrapper({"ELASTICSEARCH_PASSWORD": "/run/secrets/es_password",
                          "XPACK_SECURITY_ENCRYPTIONKEY": "/run/secrets/encryption_key"},
                         "/usr/local/bin/kibana-docker")[1:],
        envs=["ELASTICSEARCH_HOSTS=https://elasticsearch:9200", "ELASTICSEARCH_USERNAME=kibana_lab",
              "ELASTICSEARCH_SSL_CERTIFICATEAUTHORITIES=/run/tls/ca.crt", "ELASTICSEARCH_SSL_VERIFICATIONMODE=full",
              "SERVER_SSL_ENABLED=true", "SERVER_SSL_CERTIFICATE=/run/tls/kibana.crt",
              "SERVER_SSL_KEY=/run/tls/kibana.key", "SERVER_BASEPATH=/kibana", "SERVER_REWRITEBASEPATH=true",
              f"SERVER_PUBLICBASEURL=https://{lab.edge.host_names[0]}:{s.ops_port}/kibana",
              "TELEMETRY_OPTIN=false", "TELEMETRY_ENABLED=false"]),
        uid=1000, gid=0, volumes={"data": "/usr/share/kibana/data"},
        files=[*tls_files(s, "kibana", "kibana"),
               File("es_password", "/run/secrets/es_password", content=secret("kibana-es"), secret=True),
               File("encryption_key", "/run/secrets/encryption_key", content=secret("kibana-key"), secret=True)]),
        depends=("elasticsearch",))

    add(Spec("Filebeat", Hardened(
        service="filebeat", tier="data", image=s.image("filebeat"), user="1000:1000", memory_bytes=mem("filebeat"),
        healthcheck=["CMD", "curl", "-fs", "http://127.0.0.1:5066/"],
        networks=[(data_net, ["filebeat"])],
        entrypoints=["/bin/bash"],
        command=_wrapper({"FILEBEAT_ES_PASSWORD": "/run/secrets/es_password"},
                         "filebeat -e --strict.perms=true -c /etc/seclab/filebeat.yml")[1:],
        mounts=[docker.ContainerMountArgs(type="volume", source=logs_app.name, target="/logs/app", read_only=True),
                docker.ContainerMountArgs(type="volume", source=logs_edge.name, target="/logs/edge",
                                          read_only=True)]),
        uid=1000, gid=1000, volumes={"data": "/usr/share/filebeat/data"},
        files=[File("filebeat.yml", "/etc/seclab/filebeat.yml", content=render.filebeat_yml()),
               File("ca.crt", "/run/tls/ca.crt", source=s.tls("elasticsearch").ca, public=True),
               File("es_password", "/run/secrets/es_password", content=secret("filebeat-es"), secret=True)]),
        depends=("elasticsearch",))

    # --- monitoring (monitoring/render.py: the same prometheus.yml, alertmanager.yml and rules) ------
    mon = render.monitoring_files(lab)
    am_file = "alertmanager.yml"
    add(Spec("Prometheus", Hardened(
        service="prometheus", tier="app", image=s.image("prometheus"), user="65534:65534",
        memory_bytes=mem("prometheus"),
        healthcheck=["CMD", "wget", "-qO-", f"http://127.0.0.1:{lab.ports.prometheus}/-/healthy"],
        networks=[(app_net, ["prometheus"]), (data_net, ["prometheus"])],
        command=[f"--config.file={render.PROM_DIR}/prometheus.yml", "--storage.tsdb.path=/prometheus",
                 f"--web.listen-address=:{lab.ports.prometheus}",
                 "--web.external-url=/prometheus/", "--web.route-prefix=/"]),
        uid=65534, gid=65534, volumes={"data": "/prometheus"},
        files=[*_files({k: v for k, v in mon.items() if k != am_file}, "prometheus", render.PROM_DIR),
               *tls_files(s, "prometheus-scraper", "scraper")]))

    # Alerts reach the webhook named in alertmanager.yml (monitoring_webhook_url); see docs/docker.md.
    add(Spec("Alertmanager", Hardened(
        service="alertmanager", tier="app", image=s.image("alertmanager"), user="65534:65534",
        memory_bytes=mem("alertmanager"),
        healthcheck=["CMD", "wget", "-qO-", f"http://127.0.0.1:{lab.ports.alertmanager}/-/healthy"],
        networks=[(app_net, ["alertmanager"])],
        command=["--config.file=/etc/seclab/alertmanager/alertmanager.yml", "--storage.path=/alertmanager",
                 f"--web.listen-address=:{lab.ports.alertmanager}", "--cluster.listen-address="]),
        uid=65534, gid=65534, volumes={"data": "/alertmanager"},
        files=_files({am_file: mon[am_file]}, "alertmanager", "/etc/seclab/alertmanager")))

    pg_exporter_uri = (f"postgres:{lab.ports.postgres}/{pg_roles['monitor_db']}?sslmode=verify-full"
                       "&sslrootcert=/run/tls/ca.crt&sslcert=/run/tls/client.crt&sslkey=/run/tls/client.key")
    redis_uri = f"rediss://redis:{lab.ports.redis}"
    exporters: list[tuple[str, str, pulumi.Input[str], str, str, list[str], int, list[str], list[File]]] = [
        ("NodeExporter", "node-exporter", s.image("node_exporter"), "65534:65534", "app",
         ["--path.procfs=/host/proc", "--path.sysfs=/host/sys", "--no-collector.wifi",
          f"--web.listen-address=:{lab.ports.node_exporter}"], lab.ports.node_exporter, [], []),
        ("PostgresExporter", "postgres-exporter", s.image("postgres_exporter"), "65534:65534", "data",
         [f"--web.listen-address=:{lab.ports.postgres_exporter}"], lab.ports.postgres_exporter,
         [f"DATA_SOURCE_URI={pg_exporter_uri}", f"DATA_SOURCE_USER={pg_roles['monitor_role']}",
          "DATA_SOURCE_PASS_FILE=/run/secrets/db_password"],
         # Its own client certificate, CN = seclab_monitor = the login role (clientcert=verify-full).
         [File("db_password", "/run/secrets/db_password", content=secret("db-monitor"), secret=True),
          *tls_files(s, pg_roles["monitor_role"], "client")]),
        ("RedisExporter", "redis-exporter", s.image("redis_exporter"), "59000:59000", "data",
         [f"--redis.addr={redis_uri}", f"--redis.user={exporter_redis_user}",
          "--redis.password-file=/run/secrets/redis_passwords.json", "--tls-ca-cert-file=/run/tls/ca.crt",
          "--tls-client-cert-file=/run/tls/client.crt", "--tls-client-key-file=/run/tls/client.key",
          f"--web.listen-address=:{lab.ports.redis_exporter}"], lab.ports.redis_exporter, [],
         [File("redis_passwords.json", "/run/secrets/redis_passwords.json", secret=True,
               content=pulumi.Output.secret(pw[f"redis-{exporter_redis_user}"].result.apply(
                   lambda p: json.dumps({redis_uri: p})))),
          *tls_files(s, "prometheus-scraper", "client")]),
        ("NginxExporter", "nginx-exporter", nginx_exp_image.image_name, "65534:65534", "app",
         [f"--nginx.scrape-uri=http://edge:{render.EDGE_STATUS}/stub_status",
          f"--web.listen-address=:{lab.ports.nginx_exporter}"], lab.ports.nginx_exporter, [], []),
    ]
    for kind, name, img, user, net, cmd, port, envs, files in exporters:
        uid, gid = (int(x) for x in user.split(":"))
        networks = [(nets[net], [name])] + ([(app_net, [name])] if net == "data" else [])
        add(Spec(kind, Hardened(
            service=name, tier="data" if net == "data" else "app", image=img, user=user,
            memory_bytes=mem(name), healthcheck=["CMD", "wget", "-qO-", f"http://127.0.0.1:{port}/metrics"],
            networks=networks, command=cmd, envs=envs,
            mounts=[] if name != "node-exporter" else [
                docker.ContainerMountArgs(type="bind", source="/proc", target="/host/proc", read_only=True),
                docker.ContainerMountArgs(type="bind", source="/sys", target="/host/sys", read_only=True)]),
            uid=uid, gid=gid, files=files))

    ops_url = f"https://{lab.edge.host_names[0]}:{s.ops_port}"
    add(Spec("Grafana", Hardened(
        service="grafana", tier="app", image=s.image("grafana"), user="472:0", memory_bytes=mem("grafana"),
        healthcheck=["CMD", "wget", "-qO-", "http://127.0.0.1:3000/api/health"],
        networks=[(app_net, ["grafana"])],
        envs=["GF_SECURITY_ADMIN_PASSWORD__FILE=/run/secrets/admin_password", "GF_SECURITY_ADMIN_USER=admin",
              f"GF_SERVER_ROOT_URL={ops_url}/grafana/",
              "GF_SERVER_SERVE_FROM_SUB_PATH=true", "GF_USERS_ALLOW_SIGN_UP=false",
              "GF_AUTH_ANONYMOUS_ENABLED=false", "GF_SECURITY_COOKIE_SECURE=true",  # ASVS 3.4.1
              "GF_SECURITY_DISABLE_GRAVATAR=true", "GF_ANALYTICS_REPORTING_ENABLED=false",
              "GF_ANALYTICS_CHECK_FOR_UPDATES=false", "GF_PATHS_PROVISIONING=/etc/seclab/grafana/provisioning"]),
        uid=472, gid=0, volumes={"data": "/var/lib/grafana"},
        files=[File("admin_password", "/run/secrets/admin_password", content=secret("grafana-admin"), secret=True)],
        repo_binds=[(str(IAC_DIR / "grafana" / "provisioning"), "/etc/seclab/grafana/provisioning"),
                    (str(IAC_DIR / "grafana" / "dashboards"), "/etc/seclab/grafana/dashboards")]))

    # --- edge (edge/render.py + waf_rules/render.py: the templates the Ansible edge and waf roles use) ---
    https, http = lab.ports.edge_https, lab.ports.edge_http
    add(Spec("Edge", Hardened(
        service="edge", tier="edge", image=edge_image.image_name, user="10101:10101", memory_bytes=mem("edge"),
        healthcheck=["CMD", "curl", "-fsS", "-o", "/dev/null", f"http://127.0.0.1:{render.EDGE_STATUS}/stub_status"],
        networks=[(edge_net, ["edge"]), (app_net, ["edge"], s.edge_app_ip)],
        command=["nginx", "-g", "daemon off;", "-c", f"{render.EDGE_CONF_DIR}/nginx.conf"],
        mounts=[docker.ContainerMountArgs(type="volume", source=logs_edge.name, target=render.LOG_DIR)],
        # Same port numbers inside and out (the template's http->https redirect names ports.edge_https);
        # a namespaced sysctl lets the non-root master bind them: no NET_BIND_SERVICE (CIS 5.3).
        sysctls={"net.ipv4.ip_unprivileged_port_start": str(min(https, http))},
        ports=[docker.ContainerPortArgs(internal=https, external=https, ip=s.publish_address),
               docker.ContainerPortArgs(internal=http, external=http, ip=s.publish_address),
               # operator consoles: loopback only, whatever publishAddress says
               docker.ContainerPortArgs(internal=render.EDGE_OPS, external=s.ops_port, ip="127.0.0.1")]),
        uid=10101, gid=10101,
        files=[*_files(render.edge_files(lab), "nginx", render.EDGE_CONF_DIR),
               *_files(render.waf_files(lab), "waf", render.WAF_CONF_DIR),
               *_pki_layout_files(s, {"edge": "server", "edge-client": "client to the app (mTLS)"})]),
        depends=("app", "idp", "grafana", "kibana"))

    pulumi.export("edge_url", lab.edge_url)
    pulumi.export("issuer", lab.issuer)
    pulumi.export("ops_url", ops_url)
    pulumi.export("realm_export", str(s.secrets_dir / "idp" / "realm.json"))
    pulumi.export("user_secrets_dir", str(users_dir))
    pulumi.export("ca_cert", s.tls("edge").ca)
    pulumi.export("services", sorted(services))
    pulumi.export("grafana_admin_password", secret("grafana-admin"))
    pulumi.export("keycloak_admin_password", secret("keycloak-admin"))
    pulumi.export("elastic_password", secret("elastic"))
    return services


__all__ = ["NETWORKS", "build"]
