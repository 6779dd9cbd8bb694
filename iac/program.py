"""The lab as Docker containers: networks, secrets, images and one component per service.

Topology (same as the Ansible engine): edge -> app (mTLS) -> PostgreSQL/Redis (TLS + client cert);
Keycloak behind the edge; Prometheus + exporters; Grafana; Elasticsearch + Filebeat + Kibana.
Only the edge publishes ports, and its operator port only on the host's loopback.
"""

from __future__ import annotations

import hashlib
import json

import pulumi
import pulumi_docker as docker
import pulumi_random as random

from . import render
from .config import IAC_DIR, REPO_ROOT, Settings, load_settings
from .hardening import TMPFS_OPTS, Hardened
from .services import File, Service, Spec, tls_files

NETWORKS = ("edge", "app", "data")


def _networks(settings: Settings) -> dict[str, docker.Network]:
    # data is internal: the data tier has no route out and none in except from app-tier peers
    # (CIS 5.29 spirit, ASVS 1.4.x segmentation). app keeps egress for the external AI provider.
    return {
        n: docker.Network(
            n,
            name=f"{settings.prefix}-{n}",
            internal=(n == "data"),
            driver="bridge",
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


def build() -> dict[str, Service]:
    """Declare every resource; returns the services by name (the tests walk them)."""
    s = load_settings()
    lab = s.lab
    nets = _networks(s)
    edge_net, app_net, data_net = nets["edge"], nets["app"], nets["data"]

    pw = {n: _password(f"{n}-password") for n in (
        "postgres", "keycloak-db", "exporter-db", "keycloak-admin", "redis-app", "redis-worker",
        "redis-exporter", "grafana-admin", "elastic", "kibana-es", "filebeat-es", "kibana-key")}

    def secret(key: str) -> pulumi.Output[str]:
        return pulumi.Output.secret(pw[key].result)

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

    waf_dir, waf_main = render.render_waf(lab, s.host_dir / "edge" / "waf", "/var/log/seclab/modsec-audit.json")
    mem = s.memory_bytes
    services: dict[str, Service] = {}

    def add(spec: Spec, depends: tuple[str, ...] = ()) -> Service:
        svc = Service(spec, s, depends_on=[services[d].container for d in depends])
        services[spec.hardened.service] = svc
        return svc

    # --- data tier -------------------------------------------------------------------------
    add(Spec("Postgres", Hardened(
        service="postgres", tier="data", image=s.image("postgres"), user="999:999", memory_bytes=mem("postgres"),
        healthcheck=["CMD", "pg_isready", "-h", "/var/run/postgresql", "-U", "postgres"],
        networks=[(data_net, ["postgres"])],
        envs=["POSTGRES_PASSWORD_FILE=/run/secrets/postgres_password", "PGDATA=/var/lib/postgresql/data/pgdata"],
        command=["postgres", "-c", "ssl=on", "-c", "ssl_cert_file=/run/tls/postgres.crt",
                 "-c", "ssl_key_file=/run/tls/postgres.key", "-c", "ssl_ca_file=/run/tls/ca.crt",
                 "-c", "ssl_min_protocol_version=TLSv1.2", "-c", "hba_file=/etc/seclab/pg_hba.conf",
                 "-c", "password_encryption=scram-sha-256", "-c", "log_connections=on"],
        tmpfs={"/tmp": TMPFS_OPTS, "/var/run/postgresql": "rw,noexec,nosuid,nodev,size=1m,mode=1777"}),
        uid=999, gid=999, volumes={"data": "/var/lib/postgresql/data"},
        files=[*tls_files(s, "postgres", "postgres"),
               File("postgres_password", "/run/secrets/postgres_password", content=secret("postgres"), secret=True),
               File("keycloak_db_password", "/run/secrets/keycloak_db_password", content=secret("keycloak-db"),
                    secret=True),
               File("exporter_db_password", "/run/secrets/exporter_db_password", content=secret("exporter-db"),
                    secret=True),
               File("pg_hba.conf", "/etc/seclab/pg_hba.conf", content=render.pg_hba(lab)),
               File("10-seclab.sql", "/docker-entrypoint-initdb.d/10-seclab.sql", content=render.pg_init_sql(lab)),
               File("20-secrets.sh", "/docker-entrypoint-initdb.d/20-secrets.sh", content=render.PG_INIT_SH)]))

    redis_acl = pulumi.Output.all(_sha256(pw["redis-app"]), _sha256(pw["redis-worker"]),
                                  _sha256(pw["redis-exporter"])).apply(lambda h: render.redis_acl(*h))
    add(Spec("Redis", Hardened(
        service="redis", tier="data", image=s.image("redis"), user="999:999", memory_bytes=mem("redis"),
        healthcheck=["CMD-SHELL", "redis-cli -s /run/redis/redis.sock ping | grep -qE 'PONG|NOAUTH'"],
        networks=[(data_net, ["redis"])], command=["redis-server", "/etc/seclab/redis.conf"],
        tmpfs={"/tmp": TMPFS_OPTS, "/run/redis": "rw,noexec,nosuid,nodev,size=1m,mode=1777"}),
        uid=999, gid=999, volumes={"data": "/data"},
        files=[*tls_files(s, "redis", "redis"), File("redis.conf", "/etc/seclab/redis.conf", content=render.redis_conf()),
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
    def app_envs(role: str) -> list[str]:
        """The app's settings (names from app/core/config.py): secrets as *_FILE paths, never inline."""
        return [
            "SECLAB_LAB_FILE=/etc/seclab/lab.json",
            f"SECLAB_DATABASE_URL=postgres://seclab_app@postgres:{lab.ports.postgres}/{lab.name}",
            "SECLAB_DATABASE_SSL_CERT=/run/tls/client.crt", "SECLAB_DATABASE_SSL_KEY=/run/tls/client.key",
            "SECLAB_DATABASE_SSL_CA=/run/tls/ca.crt",
            f"SECLAB_REDIS_URL=rediss://{role}@redis:{lab.ports.redis}/0",
            "SECLAB_REDIS_PASSWORD_FILE=/run/secrets/redis_password",
            "SECLAB_REDIS_SSL_CERT=/run/tls/redis-client.crt", "SECLAB_REDIS_SSL_KEY=/run/tls/redis-client.key",
            f"SECLAB_OIDC_ISSUER=https://{lab.edge.host_names[0]}/realms/{lab.identity.realm}",
            f"SECLAB_OIDC_JWKS_URL=https://idp:8443/realms/{lab.identity.realm}/protocol/openid-connect/certs",
            f"SECLAB_LLAMA_URL=https://llama:{lab.ports.llama}/v1",
            "SECLAB_LOG_DIR=/var/log/seclab", "SECLAB_IDP_KIND=keycloak",
        ]

    lab_json = json.dumps(lab.model_dump(mode="json"), indent=2)

    def app_spec(kind: str, service: str, role_redis: str, pg_leaf: str, redis_key: str,
                 command: list[str], health: list[str], tls_server: bool) -> Spec:
        files = [File("lab.json", "/etc/seclab/lab.json", content=lab_json),
                 *tls_files(s, pg_leaf, "client"), *tls_files(s, "app-redis" if role_redis == "seclab_app" else "worker",
                                                               "redis-client", ca=False),
                 File("redis_password", "/run/secrets/redis_password", content=secret(redis_key), secret=True)]
        if tls_server:
            files += tls_files(s, "app", "app", ca=False)
        return Spec(kind, Hardened(
            service=service, tier="app", image=app_image.image_name, user="10001:10001", memory_bytes=mem(service),
            healthcheck=health, networks=[(app_net, [service]), (data_net, [service])],
            envs=app_envs(role_redis), command=command,
            mounts=[docker.ContainerMountArgs(type="volume", source=logs_app.name, target="/var/log/seclab")]),
            uid=10001, gid=10001, files=files)

    add(app_spec("App", "app", "seclab_app", "seclab_app", "redis-app",
                 ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", str(lab.ports.app), "--proxy-headers",
                  "--ssl-certfile", "/run/tls/app.crt", "--ssl-keyfile", "/run/tls/app.key",
                  "--ssl-ca-certs", "/run/tls/ca.crt", "--ssl-cert-reqs", "2"],  # 2 = CERT_REQUIRED: mTLS
                 # mTLS means an in-container probe has no client cert: a TCP connect is the honest check.
                 ["CMD", "python", "-c", f"import socket; socket.create_connection(('127.0.0.1', {lab.ports.app}), 3)"],
                 tls_server=True), depends=("postgres", "redis"))
    add(app_spec("Worker", "worker", "worker", "worker", "redis-worker",
                 ["celery", "-A", "app.worker.celery_app", "worker", "--loglevel=INFO", "--concurrency=2"],
                 ["CMD-SHELL", "celery -A app.worker.celery_app inspect ping -d celery@$HOSTNAME --timeout 5"],
                 tls_server=False), depends=("postgres", "redis"))

    add(Spec("Llama", Hardened(
        service="llama", tier="app", image=llama_image.image_name, user="10002:10002", memory_bytes=mem("llama"),
        healthcheck=["CMD", "python", "-c",
                     f"import socket; socket.create_connection(('127.0.0.1', {lab.ports.llama}), 3)"],
        networks=[(app_net, ["llama"])],
        command=["python", "-m", "llama_cpp.server", "--model", "/models/model.gguf", "--host", "0.0.0.0",
                 "--port", str(lab.ports.llama), "--ssl_certfile", "/run/tls/llama.crt",
                 "--ssl_keyfile", "/run/tls/llama.key"]),
        uid=10002, gid=10002, files=tls_files(s, "llama", "llama", ca=False),
        repo_binds=[(s.llama_model, "/models/model.gguf")]))

    realm_json = pulumi.Output.secret(json.dumps(render.realm_export(lab), indent=2))
    kc_db_url = (f"jdbc:postgresql://postgres:{lab.ports.postgres}/keycloak?sslmode=verify-full"
                 "&sslrootcert=/run/tls/ca.crt")
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
        envs=["KC_DB_URL=" + kc_db_url, "KC_DB_USERNAME=keycloak", "KC_BOOTSTRAP_ADMIN_USERNAME=admin",
              f"KC_HOSTNAME=https://{lab.edge.host_names[0]}/",
              f"KC_HOSTNAME_ADMIN=https://{lab.edge.host_names[0]}:{s.ops_port}/",
              "KC_PROXY_HEADERS=xforwarded", "KC_HTTP_ENABLED=false",  # TLS only, also behind the edge
              "KC_HTTPS_CERTIFICATE_FILE=/run/tls/idp.crt", "KC_HTTPS_CERTIFICATE_KEY_FILE=/run/tls/idp.key",
              "KC_HTTPS_PROTOCOLS=TLSv1.3,TLSv1.2"]),
        uid=1000, gid=0, volumes={"data": "/opt/keycloak/data"},
        files=[*tls_files(s, "idp", "idp"),
               File("db_password", "/run/secrets/db_password", content=secret("keycloak-db"), secret=True),
               File("admin_password", "/run/secrets/admin_password", content=secret("keycloak-admin"), secret=True),
               File("realm.json", f"/opt/keycloak/data/import/{lab.identity.realm}-realm.json", content=realm_json,
                    secret=True)]), depends=("postgres",))

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

    # --- monitoring ------------------------------------------------------------------------
    add(Spec("Prometheus", Hardened(
        service="prometheus", tier="app", image=s.image("prometheus"), user="65534:65534",
        memory_bytes=mem("prometheus"),
        healthcheck=["CMD", "wget", "-qO-", "http://127.0.0.1:9090/-/healthy"],
        networks=[(app_net, ["prometheus"]), (data_net, ["prometheus"])],
        command=["--config.file=/etc/seclab/prometheus.yml", "--storage.tsdb.path=/prometheus",
                 "--web.external-url=/prometheus/", "--web.route-prefix=/"]),
        uid=65534, gid=65534, volumes={"data": "/prometheus"},
        files=[File("prometheus.yml", "/etc/seclab/prometheus.yml", content=render.prometheus_yml(lab)),
               *tls_files(s, "prometheus-scraper", "scraper")],
        repo_binds=[(str(IAC_DIR / "files" / "prometheus-rules"), "/etc/prometheus/rules")]))

    exporters = [
        ("NodeExporter", "node-exporter", s.image("node_exporter"), "65534:65534", "app",
         ["--path.procfs=/host/proc", "--path.sysfs=/host/sys", "--no-collector.wifi"], 9100, [], []),
        ("PostgresExporter", "postgres-exporter", s.image("postgres_exporter"), "65534:65534", "data", [], 9187,
         ["DATA_SOURCE_URI=postgres:5432/postgres?sslmode=verify-full&sslrootcert=/run/tls/ca.crt",
          "DATA_SOURCE_USER=postgres_exporter", "DATA_SOURCE_PASS_FILE=/run/secrets/db_password"],
         [File("db_password", "/run/secrets/db_password", content=secret("exporter-db"), secret=True),
          File("ca.crt", "/run/tls/ca.crt", source=s.tls("postgres").ca, public=True)]),
        ("RedisExporter", "redis-exporter", s.image("redis_exporter"), "59000:59000", "data",
         ["--redis.addr=rediss://redis:6379", "--redis.user=exporter",
          "--redis.password-file=/run/secrets/redis_passwords.json", "--tls-ca-cert-file=/run/tls/ca.crt",
          "--tls-client-cert-file=/run/tls/client.crt", "--tls-client-key-file=/run/tls/client.key"], 9121, [],
         [File("redis_passwords.json", "/run/secrets/redis_passwords.json", secret=True,
               content=pulumi.Output.secret(pw["redis-exporter"].result.apply(
                   lambda p: json.dumps({"rediss://redis:6379": p})))),
          *tls_files(s, "prometheus-scraper", "client")]),
        ("NginxExporter", "nginx-exporter", nginx_exp_image.image_name, "65534:65534", "app",
         ["--nginx.scrape-uri=http://edge:8081/stub_status"], 9113, [], []),
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

    add(Spec("Grafana", Hardened(
        service="grafana", tier="app", image=s.image("grafana"), user="472:0", memory_bytes=mem("grafana"),
        healthcheck=["CMD", "wget", "-qO-", "http://127.0.0.1:3000/api/health"],
        networks=[(app_net, ["grafana"])],
        envs=["GF_SECURITY_ADMIN_PASSWORD__FILE=/run/secrets/admin_password", "GF_SECURITY_ADMIN_USER=admin",
              f"GF_SERVER_ROOT_URL=https://{lab.edge.host_names[0]}:{s.ops_port}/grafana/",
              "GF_SERVER_SERVE_FROM_SUB_PATH=true", "GF_USERS_ALLOW_SIGN_UP=false",
              "GF_AUTH_ANONYMOUS_ENABLED=false", "GF_SECURITY_COOKIE_SECURE=true",  # ASVS 3.4.1
              "GF_SECURITY_DISABLE_GRAVATAR=true", "GF_ANALYTICS_REPORTING_ENABLED=false",
              "GF_ANALYTICS_CHECK_FOR_UPDATES=false", "GF_PATHS_PROVISIONING=/etc/seclab/grafana/provisioning"]),
        uid=472, gid=0, volumes={"data": "/var/lib/grafana"},
        files=[File("admin_password", "/run/secrets/admin_password", content=secret("grafana-admin"), secret=True)],
        repo_binds=[(str(IAC_DIR / "grafana" / "provisioning"), "/etc/seclab/grafana/provisioning"),
                    (str(IAC_DIR / "grafana" / "dashboards"), "/etc/seclab/grafana/dashboards")]))

    # --- edge ------------------------------------------------------------------------------
    nginx_conf = render.nginx_conf(lab, waf_main)
    add(Spec("Edge", Hardened(
        service="edge", tier="edge", image=edge_image.image_name, user="10101:10101", memory_bytes=mem("edge"),
        healthcheck=["CMD", "curl", "-fsS", f"http://127.0.0.1:{render.EDGE_STATUS}/healthz"],
        networks=[(edge_net, ["edge"]), (app_net, ["edge"])],
        command=["nginx", "-g", "daemon off;", "-c", "/etc/seclab/nginx/nginx.conf"],
        mounts=[docker.ContainerMountArgs(type="volume", source=logs_edge.name, target="/var/log/seclab")],
        ports=[docker.ContainerPortArgs(internal=render.EDGE_HTTPS, external=lab.ports.edge_https, ip=s.publish_address),
               docker.ContainerPortArgs(internal=render.EDGE_HTTP, external=lab.ports.edge_http, ip=s.publish_address),
               # operator consoles: loopback only, whatever publishAddress says
               docker.ContainerPortArgs(internal=render.EDGE_OPS, external=s.ops_port, ip="127.0.0.1")]),
        uid=10101, gid=10101,
        files=[File("nginx.conf", "/etc/seclab/nginx/nginx.conf", content=nginx_conf),
               *tls_files(s, "edge", "edge"), *tls_files(s, "edge-client", "edge-client", ca=False)],
        repo_binds=[(str(waf_dir), str(waf_dir))]),
        depends=("app", "idp", "grafana", "kibana"))

    pulumi.export("edge_url", f"https://{lab.edge.host_names[0]}:{lab.ports.edge_https}")
    pulumi.export("ops_url", f"https://{lab.edge.host_names[0]}:{s.ops_port}")
    pulumi.export("realm_export", str(s.secrets_dir / "idp" / "realm.json"))
    pulumi.export("ca_cert", s.tls("edge").ca)
    pulumi.export("services", sorted(services))
    pulumi.export("grafana_admin_password", secret("grafana-admin"))
    pulumi.export("keycloak_admin_password", secret("keycloak-admin"))
    pulumi.export("elastic_password", secret("elastic"))
    return services


__all__ = ["NETWORKS", "build"]
