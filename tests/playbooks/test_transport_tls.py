"""Transport TLS to PostgreSQL and Redis (issue "Edge and transport", item 5), checked on the rendered files.

Templates are rendered by Ansible itself (render_tls.yml) with the roles' defaults and the default lab
definition, as test_playbooks.py does. References: Mozilla Server Side TLS "intermediate", PostgreSQL 15
docs 21.1 (pg_hba clientcert), Redis TLS and ACL docs, ASVS 4.0.3 V9.1/V9.2, V4.1.3.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.playbooks.test_playbooks import HERE, ROLES, ROOT, _ansible_playbook, _env, _lines

LAB_ROLES = {"seclab_app", "seclab_owner", "seclab_monitor", "keycloak", "+seclab_tenants"}
MOZILLA_TLS12 = {
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
}
PKI = "/etc/seclab/pki"


@pytest.fixture(scope="module")
def out(labvars: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tls")
    proc = subprocess.run(
        [_ansible_playbook(), "-i", "localhost,", str(HERE / "render_tls.yml"), "-e", f"@{labvars}",
         "-e", f"out_dir={d}"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return d



def _conf(path: Path) -> dict[str, str]:
    return {k.strip(): v.strip() for k, v in (ln.split("=", 1) for ln in _lines(path))}


# ---------------------------------------------------------------- PostgreSQL


def test_pg_hba_is_tls_only_with_client_certificates(out: Path) -> None:
    rows = [ln.split() for ln in _lines(out / "pg_hba.conf")]
    assert not [r for r in rows if r[0] in {"host", "hostnossl", "hostgssenc", "hostnogssenc"}]
    local = [r for r in rows if r[0] == "local"]
    assert local == [["local", "all", "postgres", "peer"]]
    tcp = [r for r in rows if r[0] == "hostssl"]
    assert {r[2] for r in tcp} == LAB_ROLES
    for r in tcp:
        assert r[3] == "127.0.0.1/32" and r[4] == "scram-sha-256", r
        assert "trust" not in r and "password" not in r and "md5" not in r, r
        opts = dict(o.split("=", 1) for o in r[5:])
        if r[2] == "seclab_owner":
            # Until the app presents an owner certificate of its own (see postgresql defaults).
            assert opts["clientcert"] in {"verify-ca", "verify-full"}, r
        elif r[2] == "+seclab_tenants":
            # Tenant logins present the app's certificate (CN seclab_app): a lab-CA key, not a CN match.
            assert opts["clientcert"] in {"verify-ca", "verify-full"}, r
        else:
            assert opts["clientcert"] == "verify-full", r
    assert {(r[1], r[2]) for r in tcp} == {
        ("seclab", "seclab_app"), ("seclab", "seclab_owner"), ("postgres", "seclab_monitor"), ("keycloak", "keycloak"),
        ("seclab", "+seclab_tenants"),
    }


def test_postgresql_ssl_settings(out: Path) -> None:
    conf = _conf(out / "postgresql.conf")
    assert conf["ssl"] == "on"
    assert conf["ssl_min_protocol_version"] == "'TLSv1.2'"
    assert conf["ssl_cert_file"] == f"'{PKI}/certs/postgres.chain.crt'"
    assert conf["ssl_key_file"] == f"'{PKI}/private/postgres.key'"
    assert conf["ssl_ca_file"] == f"'{PKI}/ca/ca-bundle.crt'"
    assert conf["ssl_crl_file"] == f"'{PKI}/crl/crl.pem'"
    assert set(conf["ssl_ciphers"].strip("'").split(":")) == MOZILLA_TLS12
    assert conf["ssl_prefer_server_ciphers"] == "off"
    assert conf["listen_addresses"] == "'localhost'"


def test_postgresql_tls_has_no_off_switch() -> None:
    # TLS from the first start: the pki role runs before the postgresql role (site.yml), so the template
    # has no "certificates not there yet" variant that a stale fact could select (the first-run fault).
    text = (ROOT / "datastores" / "postgresql" / "seclab.conf.j2").read_text()  # shared by both engines
    assert "ssl = off" not in text and "ssl = on" in text


# ---------------------------------------------------------------- Redis


def test_redis_is_tls_only_with_client_certificates(out: Path) -> None:
    lines = _lines(out / "redis.conf")
    assert "port 0" in lines
    assert "tls-port 6379" in lines
    assert "tls-auth-clients yes" in lines
    assert 'tls-protocols "TLSv1.2 TLSv1.3"' in lines
    assert f"tls-cert-file {PKI}/certs/redis.chain.crt" in lines
    assert f"tls-key-file {PKI}/private/redis.key" in lines
    assert f"tls-ca-cert-file {PKI}/ca/ca-bundle.crt" in lines
    ciphers = next(ln for ln in lines if ln.startswith("tls-ciphers ")).split()[1]
    assert set(ciphers.split(":")) == MOZILLA_TLS12
    assert "protected-mode yes" in lines
    binds = [ln for ln in lines if ln.startswith("bind ")]
    assert len(binds) == 1 and set(binds[0].split()[1:]) <= {"127.0.0.1", "-::1", "::1"}
    assert not any(ln.startswith(("unixsocket ", "requirepass", "tls-auth-clients no", "tls-auth-clients optional"))
                   for ln in lines)


def test_redis_has_no_plaintext_variant() -> None:
    text = (ROOT / "datastores" / "redis" / "seclab.conf.j2").read_text()
    assert "port 0" in text and "tls_ready" not in text
    assert not any(line.strip().startswith("port {{") for line in text.splitlines())


def _acl(out: Path) -> dict[str, list[str]]:
    users = [ln.split() for ln in (out / "redis.acl").read_text().splitlines() if ln.strip()]
    return {u[1]: u[2:] for u in users}


def test_redis_default_user_is_off(out: Path) -> None:
    default = _acl(out)["default"]
    assert default[0] == "off" and "-@all" in default and "nopass" not in default


DENIED = {"-@dangerous", "-@admin", "-flushall", "-flushdb", "-swapdb", "-keys", "-scan", "-shutdown", "-debug",
          "-config", "-acl", "-module", "-monitor", "-migrate", "-restore", "-sort", "-function"}


@pytest.mark.parametrize("user", ["seclab_app", "seclab_worker"])
def test_redis_component_users_are_least_privilege(out: Path, user: str) -> None:
    rules = _acl(out)[user]
    assert rules[0] == "on"
    assert "+@all" not in rules and "allcommands" not in rules and "+@dangerous" not in rules
    assert "+@admin" not in rules and "+@scripting" not in rules and "+@pubsub" not in rules
    assert "~*" not in rules and "allkeys" not in rules and "&*" not in rules and "allchannels" not in rules
    assert [r for r in rules if r.startswith("~")] == ["~seclab:*"]
    assert rules.index("-@all") < rules.index("+@read")
    assert DENIED <= set(rules)
    # the explicit denials come after every grant
    last_grant = max(i for i, r in enumerate(rules) if r.startswith("+"))
    assert all(rules.index(d) > last_grant for d in DENIED)
    # Celery via kombu: EVALSHA of its binding scripts, which call TIME (verified against a real worker).
    assert {"+evalsha", "+eval", "+script|load", "+time", "+publish", "+@transaction"} <= set(rules)


def test_redis_app_cannot_drive_workers(out: Path) -> None:
    app = _acl(out)["seclab_app"]
    assert [r for r in app if r.startswith("&")] == ["&seclab:/0.celeryev/*"]  # task-sent events only, no pidbox
    assert not {"+subscribe", "+psubscribe"} & set(app)
    worker = _acl(out)["seclab_worker"]
    assert "&seclab:/0.celery.pidbox" in worker and "+psubscribe" in worker


def test_redis_exporter_user_reads_statistics_only(out: Path) -> None:
    rules = _acl(out)["seclab_exporter"]
    assert not [r for r in rules if r.startswith(("~", "&", "%"))]
    grants = {r for r in rules if r.startswith("+")}
    assert grants <= {"+auth", "+hello", "+ping", "+select", "+client|setname", "+info", "+config|get",
                      "+slowlog|get", "+slowlog|len", "+latency|latest", "+memory|stats", "+dbsize", "+cluster|info"}


# ---------------------------------------------------------------- clients


def test_app_env_uses_verify_full_and_client_certificates(out: Path) -> None:
    env = dict(ln.split("=", 1) for ln in _lines(out / "app.env"))
    assert env["SECLAB_DB_SSLMODE"] == "verify-full"
    assert env["SECLAB_DB_SSLROOTCERT"] == f"{PKI}/ca/ca-bundle.crt"
    assert env["SECLAB_DB_SSLCERT"] == f"{PKI}/certs/seclab_app.chain.crt"
    assert env["SECLAB_DB_SSLKEY"] == f"{PKI}/private/seclab_app.key"
    assert env["SECLAB_REDIS_URL"] == "rediss://127.0.0.1:6379/0"
    assert env["SECLAB_REDIS_CA_FILE"] == f"{PKI}/ca/ca-bundle.crt"
    assert env["SECLAB_REDIS_CERT_FILE"] == f"{PKI}/certs/app-redis.chain.crt"
    assert env["SECLAB_REDIS_KEY_FILE"] == f"{PKI}/private/app-redis.key"


def test_exporters_and_worker_use_tls_with_client_certificates(out: Path) -> None:
    data = json.loads((out / "clients.json").read_text())
    procs = {p["name"]: p for p in data["processes"]}
    uri = procs["postgres-exporter"]["environment"]["DATA_SOURCE_URI"]
    assert "sslmode=verify-full" in uri
    assert f"sslrootcert={PKI}/ca/ca-bundle.crt" in uri
    assert f"sslcert={PKI}/certs/seclab_monitor.chain.crt" in uri and f"sslkey={PKI}/private/seclab_monitor.key" in uri
    cmd = procs["redis-exporter"]["command"].split()
    assert cmd[cmd.index("-redis.addr") + 1] == "rediss://127.0.0.1:6379" == data["redis_addr"]
    assert cmd[cmd.index("-tls-ca-cert-file") + 1] == f"{PKI}/ca/ca-bundle.crt"
    assert cmd[cmd.index("-tls-client-cert-file") + 1] == f"{PKI}/certs/prometheus-scraper.chain.crt"
    assert "-skip-tls-verification" not in cmd
    assert data["worker"] == {"cert": f"{PKI}/certs/worker.chain.crt", "key": f"{PKI}/private/worker.key"}


def test_keycloak_database_url_is_verify_full(out: Path) -> None:
    url = next(ln for ln in _lines(out / "keycloak.conf") if ln.startswith("db-url="))
    assert "sslmode=verify-full" in url and f"sslrootcert={PKI}/ca/ca-bundle.crt" in url
    assert f"sslcert={PKI}/certs/keycloak.chain.crt" in url and "sslkey=" in url


# ---------------------------------------------------------------- Redis replication and Sentinel


def test_redis_replica_is_the_primary_with_its_own_port_and_data(out: Path) -> None:
    primary, replica = _lines(out / "redis.conf"), _lines(out / "redis-replica.conf")
    assert "tls-port 6380" in replica and "dir /var/lib/redis-replica" in replica
    # Everything but the port and the data directory is the same: TLS, ACLs, AOF, disabled commands.
    differs = {ln for ln in set(primary) ^ set(replica) if not ln.startswith(("tls-port ", "dir "))}
    assert differs == set()
    for lines in (primary, replica):
        assert "appendonly yes" in lines and "tls-replication yes" in lines
        assert f"tls-client-cert-file {PKI}/certs/redis-peer.chain.crt" in lines
        assert "include /etc/redis/seclab/replication.conf" in lines
        # Who follows whom is Sentinel's run-time state: a rendered replicaof would fight every failover.
        assert not any(ln.startswith(("replicaof", "slaveof", "masterauth", "requirepass")) for ln in lines)


def test_redis_replication_credentials_are_the_narrow_replica_user(out: Path) -> None:
    lines = _lines(out / "redis-replication.conf")
    assert lines[0] == "masteruser seclab_replica" and lines[1].split()[0] == "masterauth"
    rules = _acl(out)["seclab_replica"]
    assert {r for r in rules if r.startswith(("+", "~", "&", "%"))} == {"+psync", "+replconf", "+ping"}


def test_redis_sentinel_user_has_the_documented_commands_only(out: Path) -> None:
    rules = _acl(out)["seclab_sentinel"]
    assert not [r for r in rules if r.startswith(("~", "%"))] and "allkeys" not in rules
    assert [r for r in rules if r.startswith("&")] == ["&__sentinel__:hello"]
    grants = {r for r in rules if r.startswith("+")}
    assert {"+slaveof", "+replicaof", "+multi", "+exec", "+config|rewrite", "+role", "+info"} <= grants
    assert not {"+@all", "+config|set", "+acl", "+flushall", "+shutdown"} & grants


def test_sentinel_is_tls_only_loopback_and_acl_based(out: Path) -> None:
    lines = _lines(out / "sentinel-3.conf")
    assert "port 0" in lines and "tls-port 26381" in lines and "tls-auth-clients yes" in lines
    assert "tls-replication yes" in lines and "dir /var/lib/redis-sentinel/3" in lines
    binds = [ln for ln in lines if ln.startswith("bind ")]
    assert len(binds) == 1 and set(binds[0].split()[1:]) <= {"127.0.0.1", "-::1", "::1"}
    assert "sentinel monitor seclab 127.0.0.1 6379 2" in lines
    assert "sentinel auth-user seclab seclab_sentinel" in lines
    users = {ln.split()[1]: ln.split()[2:] for ln in lines if ln.startswith("user ")}
    assert users["default"][0] == "off" and "-@all" in users["default"]
    assert users["seclab_sentinel"][0] == "on"
    for name in ("seclab_app", "seclab_worker", "seclab_tenant_admin", "seclab_exporter", "seclab_tls_reload"):
        rules = users[name]
        assert not any(t.startswith(">") for t in rules), "clear-text password in a sentinel's ACL"
        grants = {r for r in rules if r.startswith("+")}
        # Discovery only: no failover, reset, CONFIG SET, MONITOR (a compromised app can not move the primary).
        assert "+sentinel|get-master-addr-by-name" in grants and "+sentinel|masters" in grants
        assert not {"+sentinel", "+sentinel|failover", "+sentinel|reset", "+sentinel|set", "+sentinel|monitor",
                    "+sentinel|remove", "+sentinel|config", "+@all"} & grants, name


def test_app_env_finds_the_primary_through_the_sentinels(out: Path) -> None:
    env = dict(ln.split("=", 1) for ln in _lines(out / "app.env"))
    assert env["SECLAB_REDIS_SENTINELS"] == "127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381"
    redis = yaml.safe_load((ROLES / "redis" / "defaults" / "main.yml").read_text())
    assert env["SECLAB_REDIS_MASTER_NAME"] == redis["redis_master_name"] == "seclab"
