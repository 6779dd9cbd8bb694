"""Configuration files the containers read, rendered from the lab definition (pure functions).

Why this module is mostly adapters: the edge, the WAF, Prometheus/Alertmanager, PostgreSQL and Redis
are configured from the SAME templates the Ansible engine renders (edge/render.py,
waf_rules/render.py, monitoring/render.py, datastores/postgresql/, datastores/redis/), with
the role defaults evaluated by labdef.roles, the one evaluator every renderer uses. Only what exists on the Docker engine
alone lives here as text (operator consoles, the first-start SQL). The log search engine, its gateway
and its shipper render the logsearch role's templates (playbooks/roles/logsearch/templates).
The functions return text; the program writes it to the host through `HostFile` at deploy time,
so a preview never touches the host.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from labdef import LabDefinition, as_vars, roles

# Paths inside the containers (the program mounts the rendered files there).
EDGE_CONF_DIR = "/etc/seclab/nginx"
WAF_CONF_DIR = "/etc/seclab/waf"
EDGE_PKI_DIR = "/etc/seclab/pki"  # the pki/layout.py tree, only the edge's files mounted
PROM_DIR = "/etc/seclab/prometheus"
PG_DIR = "/etc/seclab/postgres"
LOG_DIR = "/var/log/seclab"
EDGE_STATUS = 8088
"""stub_status for the nginx exporter: app network only, never published."""
EDGE_OPS = 9443
"""Operator consoles (Grafana, Keycloak admin): published on the host's loopback only."""
KEYCLOAK_HTTPS = 8443
"""Keycloak's TLS listener (admin console through the edge's operator port)."""

PG_LOOPBACK = "127.0.0.1/32"
PG_SAMENET = "samenet"


def role_defaults(role: str, lab: LabDefinition, **overrides: Any) -> dict[str, Any]:
    """`playbooks/roles/<role>/defaults/main.yml` evaluated against `lab` (labdef.roles, the one evaluator)."""
    return roles.role_defaults(role, lab, **overrides)


def render_role_template(role: str, template: str, lab: LabDefinition, **overrides: Any) -> str:
    """One template of `role`, from where the role itself renders it (its `<role>_templates_dir` shared
    folder, else its own templates/), as Ansible's `template` module would (labdef.roles.render_template)."""
    return roles.render_template(role, template, lab, rendered_by="iac/render.py", **overrides)


def _read_tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text(encoding="utf-8") for p in sorted(root.rglob("*")) if p.is_file()}


# --- edge + WAF (edge/render.py, waf_rules/render.py) -------------------------------------------

def edge_overrides(lab: LabDefinition) -> dict[str, Any]:
    """The Docker values of the edge role's variables: container names instead of loopback, no root."""
    return {
        "edge_conf_dir": EDGE_CONF_DIR,
        "edge_pki_dir": EDGE_PKI_DIR,
        "edge_waf_conf_dir": WAF_CONF_DIR,
        "edge_user": "",  # the container runs as a non-root uid: no master/worker user switch
        "edge_pid_file": "/tmp/nginx.pid",
        "edge_temp_dir": "/tmp",
        "edge_error_log": f"{LOG_DIR}/nginx-error.log",
        "edge_access_log": f"{LOG_DIR}/nginx-access.json",
        "edge_listen_ipv6": False,
        "edge_app_upstream": f"app:{lab.ports.app}",
        "edge_idp_upstream": f"idp:{lab.ports.idp}",
        # The container's Keycloak serves plain HTTP on the private app network (iac/program.py).
        "edge_idp_tls": False,
        "edge_flower_upstream": "",  # no Flower container on the Docker engine: /flower/ is a 404 there
        "edge_stub_status_listen": str(EDGE_STATUS),
    }


def edge_files(lab: LabDefinition) -> dict[str, str]:
    """nginx.conf and snippets from edge/*.j2, plus the Docker-only operator server (included)."""
    from edge.render import render

    with tempfile.TemporaryDirectory() as tmp:
        render(lab, tmp, **edge_overrides(lab))
        files = _read_tree(Path(tmp))
    # Adapter: the shared template has no hook for extra servers; the operator consoles (Grafana:
    # Docker engine only) are one include line before the http block's closing brace.
    conf = files["nginx.conf"].rstrip()
    if not conf.endswith("}"):
        raise ValueError("edge/nginx.conf.j2 no longer ends with the http block")
    files["nginx.conf"] = conf[:-1] + f"    include {EDGE_CONF_DIR}/seclab-ops.conf;\n}}\n"
    files["seclab-ops.conf"] = ops_server(lab)
    return files


def ops_server(lab: LabDefinition) -> str:
    names = " ".join(lab.edge.host_names)
    proxy_tls = (f"proxy_ssl_verify on; proxy_ssl_verify_depth 2; "
                 f"proxy_ssl_trusted_certificate {EDGE_PKI_DIR}/ca/ca-bundle.crt; proxy_ssl_server_name on;")
    headers = f"include {EDGE_CONF_DIR}/snippets/seclab-proxy-headers.conf;"
    return f"""# Rendered by iac/render.py (Docker engine only): operator consoles on the edge's loopback-only port.
server {{
    listen {EDGE_OPS} ssl;
    http2 on;
    server_name {names};
    add_header Strict-Transport-Security "max-age=63072000" always;
    add_header X-Content-Type-Options "nosniff" always;
    add_header X-Frame-Options "SAMEORIGIN" always;
    location /grafana/ {{ proxy_pass http://grafana:3000; {headers} }}
    location / {{ proxy_pass https://idp:{KEYCLOAK_HTTPS}; {headers} {proxy_tls} proxy_ssl_name idp; }}
}}
"""


def waf_files(lab: LabDefinition) -> dict[str, str]:
    """ModSecurity/CRS from waf_rules/*.j2, read from WAF_CONF_DIR inside the edge container."""
    from waf_rules.render import render

    with tempfile.TemporaryDirectory() as tmp:
        # The waf role's audit log path: the shipper reads it where the logsearch role says it is.
        render(lab, tmp, role_defaults("waf", lab)["waf_audit_log_path"], conf_dir=WAF_CONF_DIR)
        return _read_tree(Path(tmp))


# --- monitoring (monitoring/render.py) -----------------------------------------------------------

def monitoring_files(lab: LabDefinition) -> dict[str, str]:
    """prometheus.yml, alertmanager.yml and rules/ with container names as targets."""
    from monitoring.render import render_all

    targets = {
        "app": f"app:{lab.ports.app}",
        "node": f"node-exporter:{lab.ports.node_exporter}",
        "postgres": f"postgres-exporter:{lab.ports.postgres_exporter}",
        "redis": f"redis-exporter:{lab.ports.redis_exporter}",
        "nginx": f"nginx-exporter:{lab.ports.nginx_exporter}",
        "prometheus": f"127.0.0.1:{lab.ports.prometheus}",
        "alertmanager": f"alertmanager:{lab.ports.alertmanager}",
        "keycloak": f"idp:{lab.ports.idp_management}",
    }
    app_tls = {"ca_file": "/run/tls/ca.crt", "cert_file": "/run/tls/scraper.crt",
               "key_file": "/run/tls/scraper.key", "server_name": "app"}
    return render_all(as_vars(lab), monitoring_targets=targets, monitoring_app_tls=app_tls,
                      monitoring_keycloak_ca_file="/run/tls/ca.crt")


# --- PostgreSQL (datastores/postgresql) and Redis (the redis role's templates) --------------------

def postgres_files(lab: LabDefinition) -> dict[str, str]:
    """seclab.conf (the server's config_file) and pg_hba.conf from datastores/postgresql/ (shared with the role)."""
    ov = {
        "postgresql_listen_addresses": "*",  # the data network is internal; pg_hba admits samenet only
        "postgresql_socket_dir": "/var/run/postgresql",
        "postgresql_ssl_cert_file": "/run/tls/postgres.crt",
        "postgresql_ssl_key_file": "/run/tls/postgres.key",
        "postgresql_ssl_ca_file": "/run/tls/ca.crt",
        "postgresql_ssl_crl_file": "/run/tls/crl.pem",
        "postgresql_tls_ready": True,
    }
    hba = render_role_template("postgresql", "pg_hba.conf.j2", lab, **ov)
    # Adapter: the template admits TCP logins from 127.0.0.1/32 only (one host); on Docker the
    # clients are other containers of the data network, i.e. PostgreSQL's `samenet`.
    if PG_LOOPBACK not in hba:
        raise ValueError("pg_hba.conf.j2 no longer uses 127.0.0.1/32: revisit the Docker adapter")
    hba = hba.replace(PG_LOOPBACK, PG_SAMENET.ljust(len(PG_LOOPBACK)))
    return {
        "seclab.conf": render_role_template("postgresql", "seclab.conf.j2", lab, **ov),
        "pg_hba.conf": hba,
        "pg_ident.conf": "# no user name maps\n",
    }


def postgres_roles(lab: LabDefinition) -> dict[str, str]:
    """Login roles and databases, named by the postgresql role's defaults."""
    d = role_defaults("postgresql", lab)
    return {k: str(d[f"postgresql_{k}"]) for k in (
        "db_name", "owner_role", "app_role", "monitor_role", "monitor_db", "keycloak_role", "keycloak_db")}


def pg_init_sh(lab: LabDefinition) -> str:
    """First start only (docker-entrypoint-initdb.d, empty data dir): what `app.db.admin bootstrap`,
    the monitoring and the keycloak roles do on the native engine. Passwords come from files and
    the statement log is off for this session, so no password reaches a log (ASVS 4.0.3 V2.4.1)."""
    r = postgres_roles(lab)
    return f"""#!/bin/bash
# Rendered by iac/render.py. Runs once, on an empty data directory, as the postgres superuser.
set -euo pipefail
psql -v ON_ERROR_STOP=1 -U postgres -d postgres \\
  -v owner_pw="$(cat /run/secrets/db_owner_password)" -v app_pw="$(cat /run/secrets/db_app_password)" \\
  -v mon_pw="$(cat /run/secrets/db_monitor_password)" -v kc_pw="$(cat /run/secrets/keycloak_db_password)" <<'SQL'
SET log_statement = 'none';
CREATE ROLE {r['owner_role']} LOGIN CREATEROLE NOSUPERUSER NOCREATEDB NOREPLICATION PASSWORD :'owner_pw';
-- NOINHERIT: the app reaches tenant data only through SET ROLE tenant_<name> (app.db.admin bootstrap).
CREATE ROLE {r['app_role']} LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD :'app_pw';
CREATE ROLE {r['monitor_role']} LOGIN PASSWORD :'mon_pw';
GRANT pg_monitor TO {r['monitor_role']};
CREATE ROLE {r['keycloak_role']} LOGIN PASSWORD :'kc_pw';
CREATE DATABASE {r['keycloak_db']} OWNER {r['keycloak_role']};
CREATE DATABASE {r['db_name']} OWNER {r['owner_role']} ENCODING 'UTF8';
REVOKE ALL ON DATABASE {r['db_name']} FROM PUBLIC;
GRANT CONNECT ON DATABASE {r['db_name']} TO {r['app_role']};
\\connect {r['db_name']}
REVOKE ALL ON SCHEMA public FROM PUBLIC;
ALTER SCHEMA public OWNER TO {r['owner_role']};
SQL
"""


def redis_acl_users(lab: LabDefinition) -> list[str]:
    """ACL user names of the redis role (one per component)."""
    return [u["name"] for u in role_defaults("redis", lab)["redis_acl_users"]]


def redis_overrides() -> dict[str, Any]:
    return {
        "redis_bind": "* -::*",  # the data network is internal; TLS client certificates + ACL users
        "redis_aclfile": "/run/secrets/users.acl",
        "redis_data_dir": "/data",
        "redis_tls_cert_file": "/run/tls/redis.crt",
        "redis_tls_key_file": "/run/tls/redis.key",
        "redis_tls_ca_cert_file": "/run/tls/ca.crt",
        "redis_tls_ready": True,
        # One Redis container: no replica and no sentinels on this engine yet (docs/durability.md).
        "redis_replication": False,
    }


def redis_conf(lab: LabDefinition) -> str:
    return render_role_template("redis", "seclab.conf.j2", lab, **redis_overrides())


def redis_acl(lab: LabDefinition, sha256_by_user: dict[str, str]) -> str:
    """The ACL file: SHA-256 hashes only, never a password."""
    return render_role_template("redis", "seclab.acl.j2", lab, redis_acl_password_hashes=sha256_by_user,
                                **redis_overrides())


# --- identity (labdef/realm.py) -------------------------------------------------------------------

def realm_export(lab: LabDefinition, user_secrets: dict[str, str], otp_secrets: dict[str, str],
                 client_secrets: dict[str, str]) -> str:
    """The same text `labdef.realm.write_realm_export` writes (the native path), for Keycloak's import."""
    from labdef.realm import build_realm_export

    data = build_realm_export(lab, user_secrets, otp_secrets=otp_secrets, client_secrets=client_secrets)
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def lab_json(lab: LabDefinition) -> str:
    """`SECLAB_LAB_FILE` for the app containers: `as_vars` like the native lab.json.

    Adapter: a llama.cpp provider without base_url means loopback on the native engine; here the
    server is the `llama` container.
    """
    providers = [p.model_copy(update={"base_url": f"http://llama:{lab.ports.llama}/v1"})
                 if p.kind == "llama_cpp" and not p.base_url else p for p in lab.ai.providers]
    docker_lab = lab.model_copy(update={"ai": lab.ai.model_copy(update={"providers": providers})})
    return json.dumps(as_vars(docker_lab), indent=2) + "\n"


# --- log search (playbooks/roles/logsearch/templates: the same files as natively) ---------------------

LOGSEARCH_HOST = "logsearch"
"""The engine container's name on the data network, where its gateway sidecar listens (a DNS SAN of
the lab's `logsearch` leaf, pki/plan.py)."""
SHIPPER_LOG_DIR = "/var/log/seclab-shipper"
"""The shipper's own log files: the edge's log volume is mounted read-only at paths.logs above it."""
DOCKER_LOG_DATASETS = ("nginx.access", "nginx.error", "modsecurity.audit")
"""The role's sources that are files in containers (the edge's); the app, worker and the rest log to
stdout there (Docker's json-file driver), which a container cannot read without the host's root."""


def logsearch_overrides() -> dict[str, Any]:
    """The two addresses that differ in containers: the gateway listens on the engine container's
    data-network address (not loopback), and the shipper sends there."""
    return {"logsearch_gateway_listen": "0.0.0.0", "logsearch_gateway_host": LOGSEARCH_HOST}


def logsearch_vars(lab: LabDefinition) -> dict[str, Any]:
    return role_defaults("logsearch", lab, **logsearch_overrides())


def logsearch_engine_files(lab: LabDefinition) -> dict[str, str]:
    """opensearch.yml and jvm.options exactly as the role renders them (same paths, heap, ports)."""
    return {name: render_role_template("logsearch", f"{name}.j2", lab) for name in ("opensearch.yml", "jvm.options")}


def logsearch_descriptor(lab: LabDefinition) -> str:
    """The ingest-common module's plugin descriptor (the role's template)."""
    return render_role_template("logsearch", "plugin-descriptor.properties.j2", lab)


def logsearch_gateway_conf(lab: LabDefinition) -> str:
    return render_role_template("logsearch", "gateway.conf.j2", lab, **logsearch_overrides())


def logsearch_shipper_conf(lab: LabDefinition) -> str:
    """rsyslog.conf with the role's sources that exist as files in containers, unchanged."""
    native = role_defaults("logsearch", lab)
    sources = [s for s in native["logsearch_sources"] if s["dataset"] in DOCKER_LOG_DATASETS]
    return render_role_template("logsearch", "rsyslog.conf.j2", lab, logsearch_sources=sources,
                                logsearch_log_dir=SHIPPER_LOG_DIR,
                                logsearch_error_file=f"{SHIPPER_LOG_DIR}/shipper-rejected.json",
                                **logsearch_overrides())


def logsearch_build_args(lab: LabDefinition) -> dict[str, str]:
    """iac/images/logsearch.Dockerfile's arguments: the role's pinned archive, jars and paths."""
    v = logsearch_vars(lab)
    if v["logsearch_ingest_jars_version"] != v["logsearch_version"]:
        raise ValueError("logsearch_ingest_jars are pinned for another engine version: re-pin them in the role")
    dirs = [(v["logsearch_data_dir"], 10300), (v["logsearch_tmp_dir"], 10300), (v["logsearch_log_dir"], 10300),
            (v["logsearch_shipper_work_dir"], 10302), (SHIPPER_LOG_DIR, 10302)]
    return {
        "OPENSEARCH_VERSION": str(v["logsearch_version"]),
        "OPENSEARCH_SHA256": str(v["logsearch_sha256"]),
        "INGEST_JARS": "\n".join(f"{j['artifact']} {j['file']} {j['sha256']}" for j in v["logsearch_ingest_jars"]),
        "LOGSEARCH_HOME": str(v["logsearch_home"]),
        "LOGSEARCH_CONF_DIR": str(v["logsearch_conf_dir"]),
        "LOGSEARCH_DIRS": "\n".join(f"{d} {uid}" for d, uid in dirs),
    }
