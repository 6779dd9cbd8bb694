"""Configuration files the containers read, rendered from the lab definition (pure functions).

Why this module is mostly adapters: the edge, the WAF, Prometheus/Alertmanager, PostgreSQL and Redis
are configured from the SAME templates the Ansible engine renders (edge/render.py,
waf_rules/render.py, monitoring/render.py, playbooks/roles/{postgresql,redis}/templates), with the
role defaults evaluated by labdef.roles, the one evaluator every renderer uses. Only what exists on the Docker engine
alone lives here as text (operator consoles, Elasticsearch/Filebeat, the first-start SQL).
The functions return text; the program writes it to the host through `HostFile` at deploy time,
so a preview never touches the host.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from labdef import LabDefinition, as_vars, roles

ROLES_DIR = roles.ROLES_DIR

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
"""Operator consoles (Grafana, Kibana, Keycloak admin): published on the host's loopback only."""
KEYCLOAK_HTTPS = 8443
"""Keycloak's TLS listener (admin console through the edge's operator port)."""

PG_LOOPBACK = "127.0.0.1/32"
PG_SAMENET = "samenet"


def role_defaults(role: str, lab: LabDefinition, **overrides: Any) -> dict[str, Any]:
    """`playbooks/roles/<role>/defaults/main.yml` evaluated against `lab` (labdef.roles, the one evaluator)."""
    return roles.role_defaults(role, lab, **overrides)


def render_role_template(role: str, template: str, lab: LabDefinition, **overrides: Any) -> str:
    """One role template, rendered as Ansible's `template` module would (trim_blocks, strict)."""
    env = roles.template_environment(ROLES_DIR / role / "templates")
    variables = role_defaults(role, lab, **overrides)
    # The only Ansible-only variable these templates use: the header line.
    variables.setdefault("ansible_managed", f"Rendered by iac/render.py from playbooks/roles/{role}/templates/{template}")
    return env.get_template(template).render(**variables)


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
    # Adapter: the shared template has no hook for extra servers; the operator consoles (Grafana,
    # Kibana: Docker engine only) are one include line before the http block's closing brace.
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
    location /kibana/ {{ proxy_pass https://kibana:5601; {headers} {proxy_tls} proxy_ssl_name kibana; }}
    location / {{ proxy_pass https://idp:{KEYCLOAK_HTTPS}; {headers} {proxy_tls} proxy_ssl_name idp; }}
}}
"""


def waf_files(lab: LabDefinition) -> dict[str, str]:
    """ModSecurity/CRS from waf_rules/*.j2, read from WAF_CONF_DIR inside the edge container."""
    from waf_rules.render import render

    with tempfile.TemporaryDirectory() as tmp:
        render(lab, tmp, f"{LOG_DIR}/modsec-audit.json", conf_dir=WAF_CONF_DIR)
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


# --- PostgreSQL and Redis (the Ansible roles' templates) -----------------------------------------

def postgres_files(lab: LabDefinition) -> dict[str, str]:
    """seclab.conf (the server's config_file) and pg_hba.conf from playbooks/roles/postgresql/templates."""
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


# --- Elasticsearch / Filebeat (Docker engine only) ------------------------------------------------

def filebeat_yml() -> str:
    doc = {
        "filebeat.inputs": [
            {"type": "filestream", "id": "seclab-app", "paths": ["/logs/app/*.json"],
             "parsers": [{"ndjson": {"target": "", "overwrite_keys": True, "add_error_key": True}}]},
            {"type": "filestream", "id": "seclab-edge", "paths": ["/logs/edge/*.json"],
             "parsers": [{"ndjson": {"target": "", "overwrite_keys": True, "add_error_key": True}}]},
        ],
        "output.elasticsearch": {
            "hosts": ["https://elasticsearch:9200"],
            "username": "filebeat_writer",
            "password": "${FILEBEAT_ES_PASSWORD}",
            "ssl.certificate_authorities": ["/run/tls/ca.crt"],
            "ssl.verification_mode": "full",
            "index": "seclab-logs-%{+yyyy.MM.dd}",
        },
        "setup.template.name": "seclab-logs",
        "setup.template.pattern": "seclab-logs-*",
        "setup.ilm.enabled": False,
        "http.enabled": True, "http.host": "127.0.0.1", "http.port": 5066,
        "logging.to_stderr": True,
    }
    return json.dumps(doc, indent=2) + "\n"


ES_ROLES = """# File-realm roles (least privilege, ASVS 4.1.3).
seclab_logs_writer:
  cluster: [monitor, manage_index_templates]
  indices:
    - names: ["seclab-logs-*"]
      privileges: [create_doc, create_index, auto_configure, view_index_metadata]
"""


def es_users(kibana_bcrypt: str, filebeat_bcrypt: str) -> str:
    return f"kibana_lab:{kibana_bcrypt}\nfilebeat_writer:{filebeat_bcrypt}\n"


ES_USERS_ROLES = "kibana_system:kibana_lab\nseclab_logs_writer:filebeat_writer\n"
