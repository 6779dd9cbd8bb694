"""The plan built from the lab definition: every service and client, with the right names."""

from __future__ import annotations

from ipaddress import ip_address

import pytest
from pydantic import ValidationError

from labdef import LabDefinition
from pki.model import CertSpec, PkiPlan
from pki.plan import CLIENTS, SERVERS, build_plan
from tests.pki.pki_support import EXTRA_HOST

SERVICES = {"edge", "app", "idp", "postgres", "redis", "prometheus", "llama", "flower", "logsearch"}
CLIENT_NAMES = {
    "edge-client", "seclab_app", "app-redis", "redis-peer", "worker", "prometheus-scraper", "seclab_monitor", "keycloak",
    "log-shipper", "log-reader", "log-search",
}


def test_plan_covers_every_service_and_client(plan: PkiPlan) -> None:
    servers = {c.name for c in plan.certs if c.kind == "server"}
    clients = {c.name for c in plan.certs if c.kind == "client"}
    assert servers == SERVICES == set(SERVERS)
    assert clients == CLIENT_NAMES == set(CLIENTS)


def test_server_sans_include_loopback_and_lab_host_names(plan: PkiPlan) -> None:
    for spec in plan.certs:
        if spec.kind != "server":
            continue
        assert {"localhost", EXTRA_HOST, spec.name} <= set(spec.dns_names), spec.name
        assert set(spec.ip_addresses) == {ip_address("127.0.0.1"), ip_address("::1")}


def test_postgres_client_cn_is_the_role_name(plan: PkiPlan) -> None:
    # pg_hba clientcert=verify-full compares the certificate CN with the login role.
    assert plan.get("seclab_app").common_name == "seclab_app"
    assert plan.get("seclab_app").kind == "client"
    for role in ("seclab_monitor", "keycloak"):
        assert plan.get(role).common_name == role and plan.get(role).kind == "client"


def test_owners_are_service_users(plan: PkiPlan) -> None:
    assert plan.get("postgres").owner == "postgres"
    assert plan.get("redis").owner == "redis"
    assert plan.get("edge").owner is None  # nginx master (root) loads it


def test_host_names_change_the_plan(lab: LabDefinition) -> None:
    data = lab.model_dump()
    data["edge"]["host_names"] = ["chat.example.org"]
    other = build_plan(LabDefinition.model_validate(data))
    assert "chat.example.org" in other.get("edge").dns_names
    assert EXTRA_HOST not in other.get("edge").dns_names


def test_spec_without_san_is_rejected() -> None:
    with pytest.raises(ValidationError, match="subject alternative name"):
        CertSpec(name="x", kind="server", common_name="x")


def test_duplicate_names_are_rejected(plan: PkiPlan) -> None:
    with pytest.raises(ValidationError, match="unique"):
        PkiPlan(ca=plan.ca, certs=(plan.certs[0], plan.certs[0]))


def test_names_cannot_escape_the_directory() -> None:
    with pytest.raises(ValidationError):
        CertSpec(name="../etc/passwd", kind="client", common_name="x", uris=("urn:x",))
