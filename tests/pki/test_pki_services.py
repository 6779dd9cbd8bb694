"""The default reload plan (pki/services.py), its state files (pki/loaded.py), the TLS probe and the
commands it runs (pki/reloader.py): no live service is touched here."""

from __future__ import annotations

import asyncio
import ssl
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from labdef import LabDefinition
from pki import loaded
from pki.ca import ensure, rotate
from pki.layout import Layout
from pki.model import CertSpec, PkiPlan
from pki.probe import client_context, file_sha256, presented_sha256
from pki.reloader import REDIS_RELOAD_SECRET, REDIS_RELOAD_USER, Reloader
from pki.services import PROGRAMS, ReloadPlan, build_reload_plan, select
from seclab.commands.pki import app as pki_app

ROLES = Path(__file__).resolve().parents[2] / "playbooks" / "roles"


def role_defaults(role: str) -> dict[str, Any]:
    return yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text())


@pytest.fixture(scope="module")
def rplan(lab: LabDefinition, plan: PkiPlan) -> ReloadPlan:
    return build_reload_plan(lab, plan)


def test_every_leaf_maps_to_a_service(plan: PkiPlan, rplan: ReloadPlan) -> None:
    for name in plan.names():
        assert rplan.for_cert(name), f"{name}: no service uses it"
    # Each server certificate that a listener presents is proven by a handshake to that listener.
    probed = {c.probe.cert for c in rplan.consumers if c.probe is not None}
    assert probed == {"edge", "app", "postgres", "redis"}


def test_plan_rejects_orphan_and_unknown_certificates(lab: LabDefinition, plan: PkiPlan) -> None:
    extra = CertSpec(name="stray", kind="client", common_name="stray", uris=("urn:seclab:client:stray",))
    with pytest.raises(ValueError, match="without a consumer: stray"):
        build_reload_plan(lab, PkiPlan(ca=plan.ca, certs=(*plan.certs, extra)))
    fewer = PkiPlan(ca=plan.ca, certs=tuple(c for c in plan.certs if c.name != "edge-client"))
    with pytest.raises(ValueError, match="lacks: edge-client"):
        build_reload_plan(lab, fewer)


def test_select_rejects_unknown_services(rplan: ReloadPlan) -> None:
    assert [c.service for c in select(rplan, ["edge", "app"])] == ["edge", "app"]
    with pytest.raises(KeyError):
        select(rplan, ["nginx"])


def _due(rplan: ReloadPlan, *issued: str, **kw: Any) -> list[str]:
    return [c.service for c in rplan.due(issued, **kw)]


def test_due_services(rplan: ReloadPlan) -> None:
    # Data stores first, the edge last.
    assert _due(rplan, "edge", "app") == ["app", "edge"]
    redis_all = ["redis", "redis-replica", "redis-sentinel-1", "redis-sentinel-2", "redis-sentinel-3"]
    assert _due(rplan, "postgres", "redis") == ["postgresql", *redis_all]
    assert _due(rplan, "redis-peer") == redis_all
    # The app's PostgreSQL client certificate sits in asyncpg pools built once: app and worker roll.
    assert _due(rplan, "seclab_app") == ["app", "worker"]
    # Read per connection: a rotation needs nothing ...
    assert _due(rplan, "worker", "seclab_monitor") == []
    # ... unless the old one was revoked: its holders reconnect with the new one.
    assert _due(rplan, "worker", revoked=["worker"]) == ["worker", "flower"]
    # nginx and PostgreSQL hold their CRLs in memory: a re-signed CRL needs a reload.
    assert _due(rplan, crl_updated=True) == ["postgresql", "edge"]
    # Certificates no service loads on this engine (plain HTTP on loopback) reload nothing.
    assert _due(rplan, "llama", "prometheus", "idp") == []
    assert _due(rplan, "flower") == ["flower"]  # Flower serves TLS to the edge with its own certificate
    everything = _due(rplan, "intermediate", "edge")
    assert everything[0] == "postgresql" and everything[-1] == "edge" and "app" in everything


def test_programs_match_the_playbooks() -> None:
    names = {
        "edge": role_defaults("edge")["edge_process_name"],
        "app": role_defaults("app")["app_process_name"],
        "postgresql": role_defaults("postgresql")["postgresql_process_name"],
        "redis": role_defaults("redis")["redis_process_name"],
        "redis-replica": role_defaults("redis")["redis_nodes"][1]["name"],
        **{s["name"]: s["name"] for s in role_defaults("redis")["redis_sentinels"]},
        "worker": role_defaults("worker")["worker_process_name"],
        "flower": role_defaults("worker")["worker_flower_process_name"],
        "idp": role_defaults("keycloak")["keycloak_process_name"],
        "llama": role_defaults("llama")["llama_process_name"],
        "prometheus": role_defaults("monitoring")["monitoring_process_names"]["prometheus"],
        "redis-exporter": role_defaults("monitoring")["monitoring_process_names"]["redis"],
        "postgres-exporter": role_defaults("monitoring")["monitoring_process_names"]["postgres"],
        "logsearch-gateway": role_defaults("logsearch")["logsearch_gateway_process_name"],
        "logshipper": role_defaults("logsearch")["logsearch_shipper_process_name"],
        "logsearch-keeper": role_defaults("logsearch")["logsearch_keeper_process_name"],
    }
    assert names == PROGRAMS
    assert role_defaults("keycloak")["keycloak_process_name"] == PROGRAMS["idp"]


def test_redis_reload_user_is_narrow_and_its_password_root_only() -> None:
    users = {u["name"]: u for u in role_defaults("redis")["redis_acl_users"]}
    user = users[REDIS_RELOAD_USER]
    assert user["secret"] == REDIS_RELOAD_SECRET
    assert [r for r in user["rules"].split() if r.startswith(("+", "~", "&", "%"))] == ["+config|set"]
    secrets = {f["name"]: f for f in role_defaults("secrets")["secrets_files"]}
    assert secrets[REDIS_RELOAD_SECRET]["owner"] == "root"


def test_redis_reload_password_never_on_the_command_line(lab: LabDefinition, rplan: ReloadPlan, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / REDIS_RELOAD_SECRET).write_text("s3cret-value\n")
    lab2 = lab.model_copy(update={"paths": lab.paths.model_copy(update={"secrets": str(secrets)})})
    r = Reloader(lab2, Layout(tmp_path / "pki"), "supervisor")
    redis = rplan.get("redis")
    argv = r.commands(redis)[0]
    assert argv[-6:] == [
        "tls-cert-file", str(tmp_path / "pki/certs/redis.chain.crt"),
        "tls-key-file", str(tmp_path / "pki/private/redis.key"),
        "tls-ca-cert-file", str(tmp_path / "pki/ca/ca-bundle.crt"),
    ]
    assert "s3cret-value" not in " ".join(argv)
    assert r._env(redis) == {"REDISCLI_AUTH": "s3cret-value"}
    assert r.commands(rplan.get("app")) == [["supervisorctl", "signal", "HUP", "app"]]
    systemd = Reloader(lab2, Layout(tmp_path / "pki"), "systemd")
    assert systemd.commands(rplan.get("worker")) == [["systemctl", "restart", "seclab-worker.service"]]
    assert r.commands(rplan.get("edge"))[-1][:3] == ["nginx", "-s", "reload"]


def test_state_files_follow_the_files(plan: PkiPlan, rplan: ReloadPlan, tmp_path: Path) -> None:
    d = tmp_path / "pki"
    ensure(plan, d, private_group=None)
    layout = Layout(d)
    edge, worker, prom = rplan.get("edge"), rplan.get("worker"), rplan.get("prometheus")
    assert not loaded.is_current(edge, layout)  # never recorded: reload once
    st = loaded.record(edge, layout)
    assert st is not None and loaded.is_current(edge, layout)
    assert loaded.state_path(layout, "edge").stat().st_mode & 0o777 == 0o644
    assert set(st.serials) == {"edge", "edge-client"}
    loaded.record(worker, layout)
    rotate(plan, d, ["edge"], private_group=None)
    assert not loaded.is_current(edge, layout), "a rotated edge certificate must make the edge due"
    assert loaded.is_current(worker, layout), "the worker does not load the edge certificate"
    rotate(plan, d, ["worker"], private_group=None)  # read per connection: not in the fingerprint
    assert loaded.is_current(worker, layout)
    rotate(plan, d, ["seclab_app"], private_group=None)
    assert not loaded.is_current(worker, layout)
    # Nothing loaded at start: nothing to record, never due.
    assert loaded.record(prom, layout) is None and loaded.is_current(prom, layout)


def test_cli_reloads_nothing_for_another_directory(lab: LabDefinition, tmp_path: Path) -> None:
    lab_file = tmp_path / "lab.yml"
    lab_file.write_text(yaml.safe_dump(lab.model_dump(mode="json")))
    d = tmp_path / "pki"
    runner = CliRunner()
    assert runner.invoke(pki_app, ["init", "--lab", str(lab_file), "--dir", str(d)]).exit_code == 0
    res = runner.invoke(pki_app, ["rotate", "edge", "app", "--lab", str(lab_file), "--dir", str(d)])
    assert res.exit_code == 0, res.output
    assert f"services read {lab.paths.pki}, not {d}: no service reloaded" in res.output
    res = runner.invoke(pki_app, ["rotate", "edge", "--no-reload", "--lab", str(lab_file), "--dir", str(d)])
    assert res.exit_code == 0 and "--no-reload" in res.output


# --- the probe ------------------------------------------------------------------------------------


async def _tls_server(ctx: ssl.SSLContext, postgres: bool) -> AsyncIterator[int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if postgres:
                assert await reader.readexactly(8) == struct.pack("!ii", 8, 80877103)
                writer.write(b"S")
                await writer.drain()
                await writer.start_tls(ctx)
            await reader.read(1)
        except (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=None if postgres else ctx)
    async with srv:
        yield srv.sockets[0].getsockname()[1]


@pytest.mark.parametrize("postgres", [False, True])
async def test_probe_reports_the_presented_leaf(layout: Layout, postgres: bool) -> None:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(layout.chain("app"), layout.key("app"))
    async for port in _tls_server(server, postgres):
        ctx = client_context(layout.ca_bundle, None, check_name=True)
        got = await presented_sha256("127.0.0.1", port, ctx, server_name="127.0.0.1", postgres=postgres)
        assert got == file_sha256(layout.cert("app"))
        assert got != file_sha256(layout.cert("edge"))
        with pytest.raises(ssl.SSLCertVerificationError):  # the name is checked: no blind trust
            await presented_sha256("127.0.0.1", port, ctx, server_name="other.example", postgres=postgres)
