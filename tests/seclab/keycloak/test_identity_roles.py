"""The keycloak role: templates render with Ansible's own templating, every default is documented,
the archive is pinned by version and SHA-256, and ansible-playbook --syntax-check accepts the role."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

import labdef

ROOT = Path(__file__).resolve().parents[3]
ROLES = ROOT / "playbooks" / "roles"


def _trust(value: Any) -> Any:
    """Role defaults are templates too (Ansible trusts files from the role; a bare yaml load does not)."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {k: _trust(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_trust(v) for v in value]
    return value


def _render(role: str, template: str, **extra: Any) -> str:
    defaults = yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text())
    variables = {**labdef.as_vars(labdef.load(labdef.DEFAULT_PATH)), **_trust(defaults), **extra}
    templar = Templar(loader=DataLoader(), variables=variables)
    return str(templar.template(trust_as_template((ROLES / role / "templates" / template).read_text())))


def _conf(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


PW = {"keycloak_db_password_raw": {"content": "c2VjcmV0LXB3"}}  # base64("secret-pw"), a test value


PW = {
    "keycloak_db_password_raw": {"content": "c2VjcmV0LXB3"},  # base64("secret-pw"), a test value
    "keycloak_bootstrap_secret_raw": {"content": "Ym9vdA=="},  # base64("boot")
}


def test_keycloak_conf_loopback_https_behind_the_edge() -> None:
    conf = _conf(_render("keycloak", "keycloak.conf.j2", **PW))
    assert conf["http-host"] == "127.0.0.1" and conf["http-management-host"] == "127.0.0.1"
    # HTTPS only, with the lab `idp` certificate; no plain HTTP listener at all.
    assert conf["http-enabled"] == "false" and conf["https-port"] == "8180"
    assert conf["https-certificate-file"] == "/etc/seclab/pki/certs/idp.chain.crt"
    assert conf["https-certificate-key-file"] == "/etc/seclab/pki/private/idp.key"
    assert conf["http-management-port"] == "9000"
    # The issuer base is the edge URL: users reach Keycloak through the edge (lab.edge_url).
    assert conf["hostname"] == "https://localhost" and conf["hostname-strict"] == "true"
    assert conf["proxy-headers"] == "xforwarded" and conf["proxy-trusted-addresses"] == "127.0.0.1/32"
    assert conf["db"] == "postgres" and conf["db-url"].startswith("jdbc:postgresql://127.0.0.1:5432/keycloak?sslmode=verify-full&")
    assert "sslcert=/etc/seclab/pki/certs/keycloak.chain.crt" in conf["db-url"]
    assert conf["db-password"] == "secret-pw" and conf["bootstrap-admin-client-secret"] == "boot"
    assert conf["health-enabled"] == conf["metrics-enabled"] == "true"
    assert conf["log-console-output"] == "json"
    assert "{{" not in json.dumps(conf)


def test_build_options_are_the_ones_the_conf_repeats() -> None:
    """`start --optimized` refuses a configuration whose build options differ from the build's."""
    defaults = yaml.safe_load((ROLES / "keycloak" / "defaults" / "main.yml").read_text())
    conf = _conf(_render("keycloak", "keycloak.conf.j2", **PW))
    for opt in defaults["keycloak_build_options"]:
        key, value = opt.removeprefix("--").split("=", 1)
        assert conf[key] == value, opt


def test_version_and_checksum_are_pinned_in_the_lab_definition() -> None:
    lab = labdef.load(labdef.DEFAULT_PATH)
    assert lab.identity.keycloak_version.startswith("26.") and len(lab.identity.keycloak_sha256) == 64
    defaults = yaml.safe_load((ROLES / "keycloak" / "defaults" / "main.yml").read_text())
    variables = {**labdef.as_vars(lab), **_trust(defaults)}
    templar = Templar(loader=DataLoader(), variables=variables)
    assert templar.template(trust_as_template("{{ keycloak_sha256 }}")) == lab.identity.keycloak_sha256
    assert templar.template(trust_as_template("{{ keycloak_maven_artifact }}")) == (
        f"org.keycloak:keycloak-quarkus-dist:{lab.identity.keycloak_version}:tar.gz")
    assert templar.template(trust_as_template("{{ keycloak_archive }}")) == ""  # Maven Central by default
    install = (ROLES / "keycloak" / "tasks" / "install.yml").read_text()
    assert "keycloak_archive_stat.stat.checksum == keycloak_sha256" in install


def test_every_default_has_a_comment() -> None:
    lines = (ROLES / "keycloak" / "defaults" / "main.yml").read_text().splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith(("#", " ", "-")) and ":" in line:
            j = i - 1
            while j >= 0 and lines[j].startswith("#") is False and lines[j][:1].isalpha():
                j -= 1  # consecutive variables share the comment above them
            assert j >= 0 and lines[j].startswith("#"), f"keycloak: {line.split(':')[0]} has no comment"


def test_syntax_check_of_a_play_with_the_role(tmp_path: Path) -> None:
    play = tmp_path / "identity.yml"
    play.write_text(yaml.safe_dump([{
        "name": "identity", "hosts": "localhost", "gather_facts": False, "roles": [{"role": "keycloak"}],
    }]))
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(ROLES), "ANSIBLE_CONFIG": str(ROOT / "playbooks" / "ansible.cfg")}
    bindir = Path(sys.executable).parent
    r = subprocess.run([str(bindir / "ansible-playbook"), "--syntax-check", "-i", "localhost,", str(play)],
                       env=env, capture_output=True, text=True, timeout=180, check=False)
    assert r.returncode == 0, r.stdout + r.stderr


def test_pulumi_keycloak_is_the_same_version_and_build() -> None:
    """The Pulumi engine's Keycloak container: lab.yml's version, the role's build options."""
    defaults = yaml.safe_load((ROLES / "keycloak" / "defaults" / "main.yml").read_text())
    dockerfile = (ROOT / "iac" / "images" / "keycloak.Dockerfile").read_text()
    env = dict(kv.split("=", 1) for line in dockerfile.splitlines() if line.startswith("ENV ")
               for kv in line.split()[1:])
    for opt in defaults["keycloak_build_options"]:
        key, value = opt.removeprefix("--").split("=", 1)
        assert env["KC_" + key.upper().replace("-", "_")] == value, opt
    lab = labdef.load(labdef.DEFAULT_PATH)
    assert f"keycloak:{lab.identity.keycloak_version}" in dockerfile
