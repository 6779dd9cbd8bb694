"""Configuration files the containers read, rendered from the lab definition (pure functions).

Why pure text functions: they are unit-testable without Docker, and the program writes them to the
host through `HostFile` at deploy time, so a preview never touches the host.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from seclab.labdef import LabDefinition

from .config import REPO_ROOT

# Mozilla server-side TLS guidelines v5.7: intermediate and modern profiles.
MOZILLA_TLS = {
    "intermediate": {
        "protocols": "TLSv1.2 TLSv1.3",
        "ciphers": "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
        "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
        "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305",
    },
    "modern": {"protocols": "TLSv1.3", "ciphers": ""},
}

EDGE_HTTPS, EDGE_HTTP, EDGE_OPS, EDGE_STATUS = 8443, 8080, 9443, 8081
"""Unprivileged ports inside the edge container: no NET_BIND_SERVICE needed (CIS 5.3)."""

PROBLEM = "urn:seclab:problem:"


def _problem(status: int, cause: str, title: str) -> str:
    body = json.dumps({"type": PROBLEM + cause, "title": title, "status": status})
    body = body[:-1] + ', "request_id": "$request_id"}'
    return f"default_type application/problem+json; return {status} '{body}';"


def nginx_conf(lab: LabDefinition, waf_main: str) -> str:
    """The edge: TLS, headers, limits, ModSecurity/CRS, and the routes to the services."""
    tls = MOZILLA_TLS[lab.edge.tls_profile]
    names = " ".join(lab.edge.host_names)
    per_addr = lab.limits.rate_limits.per_address_per_minute
    ciphers = f"ssl_ciphers {tls['ciphers']};" if tls["ciphers"] else ""
    proxy_tls = (
        "proxy_ssl_verify on; proxy_ssl_verify_depth 3; proxy_ssl_trusted_certificate /run/tls/ca.crt; "
        "proxy_ssl_server_name on; proxy_ssl_protocols TLSv1.2 TLSv1.3;"
    )
    common_proxy = (
        "proxy_set_header Host $host; proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; "
        "proxy_set_header X-Forwarded-Proto https; proxy_set_header X-Request-ID $request_id;"
    )
    return f"""# Rendered by iac/render.py from lab.yml - do not edit on the host.
load_module /usr/lib/nginx/modules/ngx_http_modsecurity_module.so;
worker_processes auto;
pid /tmp/nginx.pid;
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
  include /etc/nginx/mime.types;
  client_body_temp_path /tmp/nginx-body; proxy_temp_path /tmp/nginx-proxy;
  fastcgi_temp_path /tmp/nginx-fastcgi; uwsgi_temp_path /tmp/nginx-uwsgi; scgi_temp_path /tmp/nginx-scgi;
  server_tokens off;                                   # ASVS 14.3.3: no version banner
  client_max_body_size {lab.limits.body_max_bytes};    # ASVS 13.1.x: 413 above the lab's limit
  client_body_buffer_size {lab.limits.body_max_bytes};
  limit_req_zone $binary_remote_addr zone=per_addr:10m rate={per_addr}r/m;  # API4:2023
  limit_req_status 429;
  log_format ecs escape=json '{{"@timestamp":"$time_iso8601","event.dataset":"nginx.access",'
    '"http.request.id":"$request_id","source.address":"$remote_addr","http.request.method":"$request_method",'
    '"url.path":"$uri","http.response.status_code":$status,"http.response.body.bytes":$body_bytes_sent,'
    '"event.duration":"$request_time","user_agent.original":"$http_user_agent"}}';
  access_log /var/log/seclab/nginx-access.json ecs;
  modsecurity on;
  modsecurity_rules_file {waf_main};
  modsecurity_transaction_id $request_id;              # one correlation id: edge log, audit log, app
  ssl_protocols {tls['protocols']};                    # Mozilla {lab.edge.tls_profile}
  {ciphers}
  ssl_prefer_server_ciphers off;
  ssl_session_timeout 1d; ssl_session_cache shared:TLS:10m; ssl_session_tickets off;
  ssl_certificate /run/tls/edge.crt; ssl_certificate_key /run/tls/edge.key;
  add_header Strict-Transport-Security "max-age=63072000" always;     # ASVS 14.4.5
  add_header Content-Security-Policy "default-src 'none'; frame-ancestors 'none'" always;  # ASVS 14.4.3
  add_header X-Content-Type-Options nosniff always;                   # ASVS 14.4.4
  add_header Referrer-Policy no-referrer always;                      # ASVS 14.4.6
  add_header X-Request-ID $request_id always;

  server {{ listen {EDGE_HTTP}; server_name {names}; return 308 https://$host$request_uri; }}

  server {{
    listen {EDGE_HTTPS} ssl; http2 on; server_name {names};
    error_page 403 = @waf_blocked; error_page 429 = @rate_limited; error_page 413 = @too_large;
    error_page 502 503 504 = @upstream;
    location @waf_blocked {{ {_problem(403, "waf-blocked", "Request blocked by the web application firewall")} }}
    location @rate_limited {{ {_problem(429, "rate-limited", "Too many requests")} }}
    location @too_large {{ {_problem(413, "payload-too-large", "Request body too large")} }}
    location @upstream {{ {_problem(503, "upstream-unavailable", "Upstream unavailable")} }}
    location = /metrics {{ {_problem(404, "not-found", "Not found")} }}   # /metrics is not reachable from outside
    location / {{
      limit_req zone=per_addr burst=50 nodelay;
      proxy_pass https://app:{lab.ports.app}; {common_proxy} {proxy_tls} proxy_ssl_name app;
      proxy_ssl_certificate /run/tls/edge-client.crt; proxy_ssl_certificate_key /run/tls/edge-client.key;  # mTLS
    }}
    location ~ ^/(realms|resources)/ {{
      limit_req zone=per_addr burst=20 nodelay;
      proxy_pass https://idp:8443; {common_proxy} {proxy_tls} proxy_ssl_name idp;
    }}
  }}

  # Operator consoles (Grafana, Kibana, Keycloak admin): published on the host's loopback only.
  server {{
    listen {EDGE_OPS} ssl; http2 on; server_name {names};
    modsecurity off;   # operator consoles, loopback only; CRS would fight Kibana's query DSL
    location /grafana/ {{ proxy_pass http://grafana:3000; {common_proxy} }}
    location /kibana/ {{ proxy_pass https://kibana:5601; {common_proxy} {proxy_tls} proxy_ssl_name kibana; }}
    location / {{ proxy_pass https://idp:8443; {common_proxy} {proxy_tls} proxy_ssl_name idp; }}
  }}

  # Health and stub_status for the exporter: internal networks only, never published.
  server {{
    listen {EDGE_STATUS}; access_log off; modsecurity off;
    allow 127.0.0.1; allow 10.0.0.0/8; allow 172.16.0.0/12; allow 192.168.0.0/16; deny all;
    location = /healthz {{ return 200 'ok'; }}
    location = /stub_status {{ stub_status; }}
  }}
}}
"""


def render_waf(lab: LabDefinition, out_dir: Path, audit_log_path: str) -> tuple[Path, str]:
    """ModSecurity/CRS config from `waf_rules/` (shared with the Ansible engine); the one call site.

    Returns (host directory, main.conf path). The rendered files Include each other by absolute
    path, so the program mounts the directory at the *same* path inside the edge container.
    When `waf_rules.render` is not importable (an older checkout), `waf_rules/` is mounted as it is.
    """
    try:
        from waf_rules.render import render  # type: ignore[import-not-found]
    except ImportError:
        return REPO_ROOT / "waf_rules", str(REPO_ROOT / "waf_rules" / "main.conf")
    out_dir.mkdir(parents=True, exist_ok=True)
    main = render(lab, out_dir, audit_log_path)
    return out_dir.resolve(), str(main)


def realm_export(lab: LabDefinition) -> dict[str, Any]:
    """The Keycloak realm, from the same builder as the Ansible engine; the one call site."""
    try:
        from seclab.realm import build_realm_export  # type: ignore[import-not-found]
    except ImportError:
        # Minimal realm with the lab's identity settings, until seclab/realm.py is present.
        idn = lab.identity
        return {
            "realm": idn.realm,
            "enabled": True,
            "sslRequired": "all",
            "bruteForceProtected": True,  # ASVS 2.2.1
            "failureFactor": idn.brute_force_max_failures,
            "waitIncrementSeconds": idn.brute_force_wait_increment_s,
            "maxFailureWaitSeconds": idn.brute_force_max_wait_s,
            "accessTokenLifespan": idn.access_token_lifetime_s,  # ASVS 3.5.x
            "ssoSessionIdleTimeout": idn.sso_idle_timeout_s,
            "ssoSessionMaxLifespan": idn.sso_max_lifespan_s,
            "passwordPolicy": "length(12) and notUsername and notEmail",  # ASVS 2.1.1
            "roles": {"realm": [{"name": r} for r in ("user", "tenant-admin", "lab-admin")]},
            "clients": [{
                "clientId": idn.cli_client_id, "publicClient": True, "standardFlowEnabled": True,
                "redirectUris": list(idn.redirect_uris), "attributes": {"pkce.code.challenge.method": "S256"},
            }],
        }
    return build_realm_export(lab)


def prometheus_yml(lab: LabDefinition) -> str:
    jobs = {
        "node": "node-exporter:9100",
        "postgres": "postgres-exporter:9187",
        "redis": "redis-exporter:9121",
        "nginx": "nginx-exporter:9113",
        "prometheus": "127.0.0.1:9090",
    }
    scrape = [
        {"job_name": job, "static_configs": [{"targets": [target]}]} for job, target in jobs.items()
    ]
    # The app's /metrics over mTLS with the scraper's client certificate (ASVS 9.2.2).
    scrape.append({
        "job_name": "app", "scheme": "https", "metrics_path": "/metrics",
        "static_configs": [{"targets": [f"app:{lab.ports.app}"]}],
        "tls_config": {"ca_file": "/run/tls/ca.crt", "cert_file": "/run/tls/scraper.crt",
                       "key_file": "/run/tls/scraper.key", "server_name": "app"},
    })
    doc = {"global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
           "rule_files": ["/etc/prometheus/rules/*.yml"], "scrape_configs": scrape}
    return "# Rendered by iac/render.py from lab.yml\n" + json.dumps(doc, indent=2) + "\n"


def redis_conf() -> str:
    return '# Rendered by iac/render.py\nport 0\ntls-port 6379\ntls-cert-file /run/tls/redis.crt\ntls-key-file /run/tls/redis.key\ntls-ca-cert-file /run/tls/ca.crt\ntls-auth-clients yes\ntls-protocols "TLSv1.2 TLSv1.3"\nunixsocket /run/redis/redis.sock\nunixsocketperm 700\naclfile /run/secrets/users.acl\ndir /data\nappendonly yes\n'


def redis_acl(app_sha256: str, worker_sha256: str, exporter_sha256: str) -> str:
    """ACL users with SHA-256 password hashes: the file holds no plaintext password."""
    return "\n".join([
        "user default off",
        f"user seclab_app on #{app_sha256} ~* &* +@all -@admin -@dangerous",
        f"user worker on #{worker_sha256} ~* &* +@all -@admin -@dangerous",
        (f"user exporter on #{exporter_sha256} ~* +@read +info +ping +client|list +config|get +slowlog|get "
        "+latency|latest +memory|stats +select +cluster|info +xinfo"),
        "",
    ])


def pg_hba(lab: LabDefinition) -> str:
    return "\n".join([
        "# Rendered by iac/render.py. TLS only from the network (ASVS 9.2.2).",
        "local   all       postgres                        peer",
        f"hostssl {lab.name}  seclab_app  all  cert  clientcert=verify-full   # CN = role",
        "hostssl keycloak  keycloak    all  scram-sha-256",
        "hostssl postgres  postgres_exporter all scram-sha-256",
        "host    all       all         all  reject",
        "",
    ])


def pg_init_sql(lab: LabDefinition) -> str:
    """Database, app role and one schema + role per tenant (architecture layer 4)."""
    lines = [
        "-- Rendered by iac/render.py from lab.yml; runs once, on an empty data directory.",
        f"CREATE DATABASE {lab.name};",
        "CREATE ROLE seclab_app LOGIN;  -- authenticates with its client certificate only",
        f"\\connect {lab.name}",
        "REVOKE ALL ON SCHEMA public FROM PUBLIC;",
    ]
    for t in lab.tenant_names():
        role = f"tenant_{t}"
        lines += [
            f"CREATE ROLE {role} NOLOGIN;",
            f"GRANT {role} TO seclab_app;  -- reachable only through SET LOCAL ROLE",
            f"CREATE SCHEMA {role} AUTHORIZATION {role};",
            f"REVOKE ALL ON SCHEMA {role} FROM PUBLIC;",
        ]
    return "\n".join(lines) + "\n"


PG_INIT_SH = """#!/bin/bash
# Roles whose passwords are generated secrets, read from files (never in env or argv).
set -euo pipefail
psql -v ON_ERROR_STOP=1 -U postgres -v kc="$(cat /run/secrets/keycloak_db_password)" \\
     -v ex="$(cat /run/secrets/exporter_db_password)" <<'SQL'
CREATE ROLE keycloak LOGIN PASSWORD :'kc';
CREATE DATABASE keycloak OWNER keycloak;
CREATE ROLE postgres_exporter LOGIN PASSWORD :'ex';
GRANT pg_monitor TO postgres_exporter;
SQL
"""


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
