"""The Pulumi program under mocks: resource graph, hardening of every container, isolation, secrets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from iac import render
from iac.policy.rules import check_container, check_network

from .conftest import PLAIN_PREFIX, Run

EXPECTED = {
    "edge", "idp", "postgres", "redis", "app", "worker", "llama", "prometheus", "alertmanager", "node-exporter",
    "postgres-exporter", "redis-exporter", "nginx-exporter", "grafana", "logsearch", "logsearch-gateway", "logshipper",
    "logsearch-keeper", "db-sync",
}
JOBS = {"db-sync"}
"""One-shot containers: restart on failure only (they exit when done)."""
DATA_TIER = {"postgres", "redis", "logsearch", "logsearch-gateway", "logshipper", "logsearch-keeper", "postgres-exporter",
             "redis-exporter", "db-sync"}
SECRET_SIG = "4dabf18193072939515e22adb298388d"


def test_every_service_and_network_exists(run: Run) -> None:
    assert set(run.containers) == EXPECTED
    assert set(run.networks) == {"edge", "app", "data"}
    kinds = {r.typ for r in run.mocks.resources if r.typ.startswith("seclab:service:")}
    assert {"seclab:service:Postgres", "seclab:service:Keycloak", "seclab:service:Edge"} <= kinds
    assert len(kinds) == len(EXPECTED)  # one component type per service


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_container_hardening(run: Run, name: str) -> None:
    c = run.containers[name]
    assert c["readOnly"] is True
    assert c["capabilities"]["drops"] == ["ALL"]
    assert not c["capabilities"].get("adds")  # no service needs one back today
    assert "no-new-privileges:true" in c["securityOpts"]
    assert c["user"].split(":")[0] not in ("", "0", "root")
    assert c["memory"] > 0 and c["memorySwap"] == c["memory"]
    assert c["healthcheck"]["tests"] and c["healthcheck"]["tests"][0] in ("CMD", "CMD-SHELL")
    assert c["restart"] == ("on-failure" if name in JOBS else "unless-stopped")
    assert not c.get("privileged")
    # Writable paths are tmpfs or named volumes only; every bind mount is read-only.
    for m in c.get("mounts", []):
        if m["type"] == "bind":
            assert m["readOnly"] is True, (name, m["target"])
    assert all("noexec" in o or "mode=" in o for o in c["tmpfs"].values())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_policy_pack_accepts_every_container(run: Run, name: str) -> None:
    assert check_container(run.containers[name]) == []


def test_images_are_pinned(run: Run) -> None:
    for name, c in run.containers.items():
        image = c["image"]
        tag = image.rsplit(":", 1)[-1]
        assert ":" in image and tag != "latest", (name, image)
    built = {r.name: r.inputs for r in run.of_type("docker:index/image:Image")}
    assert built["app-image"]["build"]["dockerfile"].endswith("iac/images/app.Dockerfile")
    assert built["app-image"]["skipPush"] is True


def test_only_edge_publishes_ports(run: Run) -> None:
    published = {n for n, c in run.containers.items() if c.get("ports")}
    assert published == {"edge"}
    ops = [p for p in run.containers["edge"]["ports"] if p["internal"] == 9443]
    assert ops and ops[0]["ip"] == "127.0.0.1"  # operator consoles: host loopback only


def _nets(c: dict[str, Any]) -> set[str]:
    return {n["name"] for n in c.get("networksAdvanced", [])}


def test_network_isolation(run: Run) -> None:
    assert run.networks["data"]["internal"] is True
    assert check_network(run.networks["data"]) == []
    for name in DATA_TIER:
        assert "seclab-edge" not in _nets(run.containers[name]), name
    # Nothing but the edge sits on the edge network.
    on_edge = {n for n, c in run.containers.items() if "seclab-edge" in _nets(c)}
    assert on_edge == {"edge"}
    assert _nets(run.containers["postgres"]) == {"seclab-data"}


def _leaks(value: Any, plaintexts: list[str], path: str = "") -> list[str]:
    """Paths where a generated password appears outside a secret-wrapped value."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG):
            return []
        return [p for k, v in value.items() for p in _leaks(v, plaintexts, f"{path}.{k}")]
    if isinstance(value, list | tuple):
        return [p for i, v in enumerate(value) for p in _leaks(v, plaintexts, f"{path}[{i}]")]
    if isinstance(value, str) and any(t in value for t in plaintexts):
        return [path]
    return []


def test_no_plaintext_secret_in_any_input(run: Run) -> None:
    assert len(run.mocks.plaintexts) >= 10
    leaks = [f"{r.typ} {r.name}{p}" for r in run.mocks.resources
             for p in _leaks({k: v for k, v in r.inputs.items() if k != "__provider"}, run.mocks.plaintexts)]
    assert leaks == []


def test_secrets_reach_containers_as_files_only(run: Run) -> None:
    files = {r.name: r.inputs for r in run.of_type("pulumi-python:dynamic:Resource")}
    pg = files["postgres-postgres_password"]
    assert pg["content"][SECRET_SIG] and pg["content"]["value"] == f"{PLAIN_PREFIX}postgres-password"
    assert pg["mode"] == "0400" and int(pg["uid"]) == 999
    for name, c in run.containers.items():
        assert not _leaks(c.get("envs", []), [PLAIN_PREFIX]), name
    # Redis ACL holds hashes, not the password.
    acl = files["redis-users.acl"]["content"]
    assert acl[SECRET_SIG] and PLAIN_PREFIX not in acl["value"] and "user default off" in acl["value"]


def test_tls_keys_are_copied_from_pki_not_read(run: Run) -> None:
    files = {r.name: r.inputs for r in run.of_type("pulumi-python:dynamic:Resource")}
    key = files["postgres-postgres.key"]
    assert key["source"].endswith("/private/postgres.key") and not key.get("content")
    assert key["mode"] == "0400"


def _files(run: Run) -> dict[str, dict[str, Any]]:
    return {r.name: r.inputs for r in run.of_type("pulumi-python:dynamic:Resource")}


def _mounts(c: dict[str, Any]) -> dict[str, str]:
    return {m["target"]: m["source"] for m in c.get("mounts", []) if m["type"] == "bind"}


def test_edge_config_is_the_shared_template_with_its_waf(run: Run) -> None:
    edge = run.containers["edge"]
    files = _files(run)
    conf = files["edge-nginx/nginx.conf"]["content"]
    assert conf == render.edge_files(run.lab)["nginx.conf"]  # edge/render.py, nothing hand-written
    assert f"modsecurity_rules_file {render.WAF_CONF_DIR}/main.conf;" in conf
    mounts = _mounts(edge)
    # Every file the templates include is mounted where they point.
    for rel in render.edge_files(run.lab):
        assert f"{render.EDGE_CONF_DIR}/{rel}" in mounts, rel
    for rel in render.waf_files(run.lab):
        assert f"{render.WAF_CONF_DIR}/{rel}" in mounts, rel
    for path in ("certs/edge.chain.crt", "private/edge.key", "certs/edge-client.chain.crt", "private/edge-client.key",
                 "ca/ca-bundle.crt", "crl/crl.pem"):
        assert f"{render.EDGE_PKI_DIR}/{path}" in mounts, path
    https = [p for p in edge["ports"] if p["external"] == run.lab.ports.edge_https]
    assert https and https[0]["internal"] == run.lab.ports.edge_https  # the redirect names this port
    assert not edge["capabilities"].get("adds")


def test_postgres_and_redis_use_the_role_templates(run: Run) -> None:
    files = _files(run)
    pg = render.postgres_files(run.lab)
    assert files["postgres-postgres/pg_hba.conf"]["content"] == pg["pg_hba.conf"]
    assert files["postgres-postgres/seclab.conf"]["content"] == pg["seclab.conf"]
    cmd = run.containers["postgres"]["command"]
    assert f"config_file={render.PG_DIR}/seclab.conf" in cmd and f"hba_file={render.PG_DIR}/pg_hba.conf" in cmd
    assert files["redis-redis.conf"]["content"] == render.redis_conf(run.lab)
    acl = files["redis-users.acl"]["content"]["value"]
    assert all(f"user {u} on" in acl for u in render.redis_acl_users(run.lab))
    assert files["postgres-10-seclab.sh"]["mode"] == "0500"  # run, not sourced, by the entrypoint


def test_prometheus_and_alertmanager_from_monitoring_render(run: Run) -> None:
    files = _files(run)
    mon = render.monitoring_files(run.lab)
    assert files["prometheus-prometheus/prometheus.yml"]["content"] == mon["prometheus.yml"]
    assert files["prometheus-prometheus/rules/seclab.yml"]["content"] == mon["rules/seclab.yml"]
    assert files["alertmanager-alertmanager/alertmanager.yml"]["content"] == mon["alertmanager.yml"]


def _env(c: dict[str, Any]) -> dict[str, str]:
    return dict(e.split("=", 1) for e in c.get("envs", []))


APP_CONTAINERS = ("app", "worker", "db-sync")


def test_app_env_names_are_settings_the_app_reads(run: Run) -> None:
    """Every SECLAB_* the program sets is a field of app.core.config.Settings (or the worker's)."""
    from app.core.config import Settings
    from app.worker.celery_app import WorkerSettings

    known = set()
    for model in (Settings, WorkerSettings):
        prefix = model.model_config["env_prefix"]
        known |= {f"{prefix}{name}".upper() for name in model.model_fields}
    for name in APP_CONTAINERS:
        names = {k for k in _env(run.containers[name]) if k.startswith("SECLAB_")}
        assert names and not names - known, (name, sorted(names - known))


def test_app_env_mirrors_the_ansible_rendering(run: Run) -> None:
    """The names app.env.j2 and the worker role set natively are all set for the containers too."""
    import re

    from iac.config import REPO_ROOT

    roles = REPO_ROOT / "playbooks" / "roles"
    native = set(re.findall(r"^(SECLAB_[A-Z0-9_]+)=", (roles / "app/templates/app.env.j2").read_text(), re.MULTILINE))
    worker = set(re.findall(r"^\s+(SECLAB_[A-Z0-9_]+):", (roles / "worker/tasks/main.yml").read_text(), re.MULTILINE))
    worker.discard("SECLAB_ENV_FILE")  # the native env-file indirection; containers get the values directly
    assert native <= set(_env(run.containers["app"]))
    assert native | worker <= set(_env(run.containers["worker"]))


def test_issuer_is_the_lab_issuer_everywhere(run: Run) -> None:
    lab = run.lab
    for name in ("app", "worker"):
        assert _env(run.containers[name])["SECLAB_OIDC_ISSUER"] == lab.issuer
    kc = _env(run.containers["idp"])
    assert f"{kc['KC_HOSTNAME']}/realms/{lab.identity.realm}" == lab.issuer
    assert _env(run.containers["app"])["SECLAB_TRUSTED_PROXIES"] in {
        n.get("ipv4Address") for n in run.containers["edge"]["networksAdvanced"]}


def test_app_serves_mtls_and_db_redis_use_client_certs(run: Run) -> None:
    cmd = run.containers["app"]["command"]
    for flag in ("--ssl-keyfile", "--ssl-certfile", "--ssl-ca-certs"):
        assert flag in cmd
    assert cmd[cmd.index("--ssl-cert-reqs") + 1] == "2"
    env = _env(run.containers["app"])
    assert env["SECLAB_DB_SSLMODE"] == "verify-full" and env["SECLAB_REDIS_URL"].startswith("rediss://")
    files = _files(run)
    assert files["app-db-client.crt"]["source"].endswith("/certs/seclab_app.chain.crt")
    assert files["worker-redis-client.crt"]["source"].endswith("/certs/worker.chain.crt")
    assert files["idp-db-client.pk8"]["convert"] == "pkcs8-der"
    assert files["postgres-exporter-client.crt"]["source"].endswith("/certs/seclab_monitor.chain.crt")
    # The schema owner's password reaches the one-shot sync job only.
    owners = {n.split("-db_owner_password")[0] for n in files if n.endswith("-db_owner_password")}
    assert owners == {"db-sync", "postgres"}


def test_realm_export_has_user_credentials_and_is_private(run: Run) -> None:
    files = _files(run)
    realm = files["idp-realm.json"]
    assert realm["mode"] == "0600" and realm["content"][SECRET_SIG]
    export = json.loads(realm["content"]["value"])
    users = {u["username"]: u for u in export["users"]}
    for u in run.lab.users:
        creds = {c["type"]: c for c in users[u.username]["credentials"]}
        assert creds["password"]["value"] == f"{PLAIN_PREFIX}user-{u.username}-password"
        if "lab-admin" in u.roles:
            assert f"{PLAIN_PREFIX}user-{u.username}-totp" in creds["otp"]["secretData"]
            assert "CONFIGURE_TOTP" not in users[u.username]["requiredActions"]
    # `lab token` reads <paths.secrets>/users/<user>.password|.totp (0600).
    op = files[f"operator-{run.lab.users[0].username}.password"]
    assert op["mode"] == "0600" and op["path"].endswith(f"/users/{run.lab.users[0].username}.password")


def test_every_certificate_the_program_copies_is_in_the_docker_plan(run: Run) -> None:
    from iac.pki_plan import docker_plan
    from pki.plan import build_plan

    plan = docker_plan(run.lab)
    assert plan.names()[: len(build_plan(run.lab).certs)] == build_plan(run.lab).names()
    assert plan.names() == build_plan(run.lab).names()  # no Docker-only leaf: the log search uses the shared ones
    used = {Path(f["source"]).name.removesuffix(".chain.crt") for f in _files(run).values()
            if f.get("source") and f["source"].endswith(".chain.crt")}
    assert used and used <= set(plan.names()), used - set(plan.names())
