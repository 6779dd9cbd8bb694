"""Preflight on this host, the HostFile writer, and the rendered configuration."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from iac import render
from iac.hostfile import HostFileProvider, write_host_file
from labdef import load
from seclab.engines import pulumi_engine


def test_preflight_names_what_to_install_in_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A docker client but no daemon (like this CI host): point DOCKER_HOST at a dead socket.
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    with pytest.raises(pulumi_engine.PreflightError) as exc:
        pulumi_engine.preflight()
    msg = str(exc.value)
    assert "\n" not in msg
    assert "Docker" in msg
    if not os.path.exists("/usr/local/bin/pulumi") and not any(
        (Path(p) / "pulumi").exists() for p in os.environ.get("PATH", "").split(":")
    ):
        assert "Pulumi CLI" in msg


def test_preflight_passes_when_tools_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pulumi_engine.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(pulumi_engine, "_docker_daemon_reachable", lambda: True)
    pulumi_engine.preflight()  # raises if anything is still missing


def test_passphrase_file_is_private_and_stable(tmp_path: Path) -> None:
    lab = load()
    lab = lab.model_copy(update={"paths": lab.paths.model_copy(update={"secrets": str(tmp_path / "s")})})
    first = pulumi_engine.passphrase(lab)
    assert len(first) >= 40 and pulumi_engine.passphrase(lab) == first
    assert stat.S_IMODE((tmp_path / "s" / "pulumi-passphrase").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "s").stat().st_mode) == 0o700


def test_host_file_owner_mode_and_copy(tmp_path: Path) -> None:
    src = tmp_path / "k.pem"
    src.write_text("KEY")
    prov = HostFileProvider()
    out = prov.create({"path": str(tmp_path / "d" / "k"), "uid": 999, "gid": 999, "mode": "0400",
                       "source": str(src), "content": None})
    target = tmp_path / "d" / "k"
    assert target.read_text() == "KEY" and stat.S_IMODE(target.stat().st_mode) == 0o400
    if os.geteuid() == 0:
        assert target.stat().st_uid == 999
    src.write_text("RENEWED")  # a rotated certificate is a change
    assert out.outs is not None
    assert prov.diff("id", out.outs, out.outs).changes is True
    prov.delete("id", out.outs)
    assert not target.exists()
    write_host_file(str(target), b"x", 0, 0, 0o444)
    assert stat.S_IMODE(target.stat().st_mode) == 0o444


def test_rendered_configs_come_from_the_shared_templates() -> None:
    lab = load()
    edge = render.edge_files(lab)
    conf = edge["nginx.conf"]
    assert f"client_max_body_size {lab.limits.body_max_bytes};" in conf  # edge/nginx.conf.j2
    assert f"modsecurity_rules_file {render.WAF_CONF_DIR}/main.conf;" in conf
    assert f"server app:{lab.ports.app};" in conf and f"server idp:{lab.ports.idp};" in conf
    assert f"include {render.EDGE_CONF_DIR}/seclab-ops.conf;" in conf
    assert "user " not in conf.split("worker_processes")[0]  # no root master in the container
    assert "proxy_ssl_certificate /etc/seclab/pki/certs/edge-client.chain.crt;" in edge["snippets/seclab-proxy-app.conf"]
    assert "main.conf" in render.waf_files(lab)
    hba = render.postgres_files(lab)["pg_hba.conf"]
    assert "Rendered by iac/render.py from datastores/postgresql/pg_hba.conf.j2" in hba
    rows = [ln.split() for ln in hba.splitlines() if ln.startswith("host")]
    assert rows and all(r[0] == "hostssl" and r[3] == "samenet" and r[-1].startswith("clientcert=") for r in rows)
    conf_pg = render.postgres_files(lab)["seclab.conf"]
    assert "ssl = on" in conf_pg and "ssl_crl_file = '/run/tls/crl.pem'" in conf_pg
    redis = render.redis_conf(lab)
    assert "port 0" in redis and f"tls-port {lab.ports.redis}" in redis and "tls-auth-clients yes" in redis
    acl = render.redis_acl(lab, {u: "ab" * 32 for u in render.redis_acl_users(lab)})
    assert acl.startswith("user default off") and "#" + "ab" * 32 in acl
    # seclab_tls_reload: CONFIG SET of the tls-* files for `lab pki rotate` (pki/services.py).
    # seclab_tenant_admin: SCAN + DEL of a removed tenant's keys (`lab tenant remove`, durability).
    assert set(render.redis_acl_users(lab)) == {"seclab_app", "seclab_worker", "seclab_exporter", "seclab_tls_reload",
                                                "seclab_tenant_admin"}
    mon = render.monitoring_files(lab)
    assert f"app:{lab.ports.app}" in mon["prometheus.yml"] and "rules/seclab.yml" in mon
    sql = render.pg_init_sh(lab)
    assert "SET log_statement = 'none';" in sql and "PASSWORD :'app_pw'" in sql


def test_lab_json_is_what_the_app_reads() -> None:
    from app.core.config import Settings

    lab = load()
    data = json.loads(render.lab_json(lab))
    assert data["lab"]["issuer"] == lab.issuer  # as_vars form: Settings.load_lab reads data["lab"]
    llama = next(p for p in data["lab"]["ai"]["providers"] if p["kind"] == "llama_cpp")
    assert llama["base_url"] == f"http://llama:{lab.ports.llama}/v1"
    assert Settings.model_fields  # importable: the env-name test relies on it


def test_engine_issues_the_docker_plan(tmp_path: Path) -> None:
    """`up` issues the shared plan (the log search leaves included) before the stack runs."""
    out = pulumi_engine.ensure_pki(load(), tmp_path / "pki")
    assert {"logsearch", "log-shipper", "log-reader", "edge", "keycloak", "seclab_monitor"} <= set(out["issued"])
    assert not {"elasticsearch", "kibana"} & set(out["issued"])
    assert (tmp_path / "pki" / "certs" / "log-reader.chain.crt").is_file()
    assert pulumi_engine.ensure_pki(load(), tmp_path / "pki")["issued"] == []  # idempotent


def test_pkcs8_der_conversion_for_pgjdbc(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    src = tmp_path / "k.pem"
    src.write_bytes(pem)
    HostFileProvider().create({"path": str(tmp_path / "k.pk8"), "uid": 0, "gid": 0, "mode": "0400",
                               "source": str(src), "content": None, "convert": "pkcs8-der"})
    der = (tmp_path / "k.pk8").read_bytes()
    loaded = serialization.load_der_private_key(der, password=None)
    assert isinstance(loaded, type(key)) and loaded.private_numbers() == key.private_numbers()
