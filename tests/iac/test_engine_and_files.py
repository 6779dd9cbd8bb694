"""Preflight on this host, the HostFile writer, and the rendered configuration."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from iac import render
from iac.hostfile import HostFileProvider, write_host_file
from seclab.engines import pulumi_engine
from seclab.labdef import load


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
    assert prov.diff("id", out.outs, out.outs).changes is True
    prov.delete("id", out.outs)
    assert not target.exists()
    write_host_file(str(target), b"x", 0, 0, 0o444)
    assert stat.S_IMODE(target.stat().st_mode) == 0o444


def test_rendered_configs_follow_the_lab() -> None:
    lab = load()
    conf = render.nginx_conf(lab, "/etc/seclab/waf/main.conf")
    assert f"client_max_body_size {lab.limits.body_max_bytes};" in conf
    assert "urn:seclab:problem:waf-blocked" in conf and "server_tokens off" in conf
    assert "TLSv1.2 TLSv1.3" in conf  # intermediate profile in lab.yml
    sql = render.pg_init_sql(lab)
    for t in lab.tenant_names():
        assert f"CREATE SCHEMA tenant_{t} AUTHORIZATION tenant_{t};" in sql
    hba = render.pg_hba(lab)
    assert "clientcert=verify-full" in hba and hba.rstrip().endswith("reject")
    assert "user default off" in render.redis_acl("a", "b", "c")
    assert "port 0" in render.redis_conf()
