"""The Pulumi program under mocks: resource graph, hardening of every container, isolation, secrets."""

from __future__ import annotations

from typing import Any

import pytest

from iac.policy.rules import check_container, check_network

from .conftest import PLAIN_PREFIX, Run

EXPECTED = {
    "edge", "idp", "postgres", "redis", "app", "worker", "llama", "prometheus", "node-exporter",
    "postgres-exporter", "redis-exporter", "nginx-exporter", "grafana", "elasticsearch", "filebeat", "kibana",
}
DATA_TIER = {"postgres", "redis", "elasticsearch", "filebeat", "postgres-exporter", "redis-exporter"}
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
    assert c["restart"] == "unless-stopped"
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


def test_edge_mounts_the_rendered_waf_where_its_includes_point(run: Run) -> None:
    edge = run.containers["edge"]
    waf = [m for m in edge["mounts"] if m["type"] == "bind" and m["target"].endswith("waf")]
    assert waf and waf[0]["source"] == waf[0]["target"]
    files = {r.name: r.inputs for r in run.of_type("pulumi-python:dynamic:Resource")}
    assert f"modsecurity_rules_file {waf[0]['target']}/main.conf;" in files["edge-nginx.conf"]["content"]
