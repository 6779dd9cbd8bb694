"""The pki and edge Ansible roles, run for real on this host against temp paths and test ports,
twice: the first run converges, the second must report changed=0 (idempotence).

Needs root, ansible-playbook and a running supervisord (hosts without systemd); skipped otherwise.
The edge runs as supervisord program `edgetest` on 127.0.0.1:18443/18480 and is removed afterwards.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from labdef import LabDefinition, as_vars
from tests.conftest import need

from .conftest import EDGE_HTTP, EDGE_HTTPS, REPO, give_to_workers, port_open, run_dir

PROGRAM = "edgetest"
PLAYBOOK = Path(__file__).parent / "playbooks" / "edge_roles.yml"
ANSIBLE = Path(sys.executable).with_name("ansible-playbook")

@pytest.fixture(scope="module", autouse=True)
def _provisioning_tools() -> None:
    need(os.geteuid() == 0, "root (the play writes a supervisord program)")
    need(ANSIBLE.exists(), "ansible-playbook beside this interpreter (the dev extra)")
    supervised = shutil.which("supervisorctl") is not None and subprocess.run(
        ["supervisorctl", "pid"], check=False, capture_output=True, text=True).stdout.strip().isdigit()
    need(supervised, "a running supervisord (./lab up starts it)")


def _remove_program() -> None:
    conf = Path(f"/etc/supervisor/conf.d/{PROGRAM}.conf")
    subprocess.run(check=False, args=["supervisorctl", "stop", PROGRAM], capture_output=True)
    if conf.exists():
        conf.unlink()
    subprocess.run(check=False, args=["supervisorctl", "update"], capture_output=True)


def _play(vars_file: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "playbooks" / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(REPO / "playbooks" / "roles"),
        "ANSIBLE_NOCOLOR": "1",
    }
    return subprocess.run(  # noqa: PLW1510 - exit status inspected
        [
            str(ANSIBLE),
            "-i",
            "localhost,",
            str(PLAYBOOK),
            "-e",
            f"@{vars_file}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=REPO / "playbooks",
    )


def _recap(out: str) -> dict[str, int]:
    m = re.search(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", out)
    assert m, out[-3000:]
    return {"ok": int(m[1]), "changed": int(m[2]), "unreachable": int(m[3]), "failed": int(m[4])}


@pytest.fixture(scope="module")
def provisioned(lab: LabDefinition) -> Iterator[dict[str, object]]:
    for port in (EDGE_HTTPS, EDGE_HTTP):
        if port_open(port):
            pytest.fail(f"127.0.0.1:{port} is busy")
    rd = run_dir("seclab-edge-roles-")
    data = as_vars(lab)
    paths = data["lab"]["paths"]
    for key in ("etc", "pki", "logs", "data"):
        paths[key] = str(rd / key)
    (rd / "etc").mkdir()
    (rd / "logs").mkdir()
    (rd / "tmp").mkdir()
    give_to_workers(rd / "tmp")
    (rd / "etc" / "lab.json").write_text(json.dumps(data))
    conf_dir = rd / "nginx"
    variables = {
        **data,
        "pki_python": sys.executable,
        "pki_key_readers": ["seclab-no-such-user"],  # skipped, never created
        "edge_conf_dir": str(conf_dir),
        "edge_waf_enabled": False,
        "edge_listen_address": "127.0.0.1",
        "edge_listen_ipv6": False,
        "edge_https_port": EDGE_HTTPS,
        "edge_http_port": EDGE_HTTP,
        "edge_pid_file": str(rd / "nginx.pid"),
        "edge_temp_dir": str(rd / "tmp"),
        "edge_user": "nobody nogroup",
        "edge_worker_processes": 1,
        "edge_process_name": PROGRAM,
        "edge_stub_status_listen": "",
        "edge_logrotate_file": str(rd / "logrotate-edge"),  # never the live lab's /etc/logrotate.d
        "edge_logrotate_runner": False,  # the live lab's supervised logrotate loop stays as it is
    }
    vars_file = rd / "vars.json"
    vars_file.write_text(json.dumps(variables))
    _remove_program()
    try:
        first = _play(vars_file)
        second = _play(vars_file) if first.returncode == 0 else first
        yield {"dir": rd, "conf_dir": conf_dir, "first": first, "second": second, "vars": vars_file}
    finally:
        _remove_program()
        shutil.rmtree(rd, ignore_errors=True)


def test_first_run_converges(provisioned: dict) -> None:
    first = provisioned["first"]
    assert first.returncode == 0, first.stdout[-4000:]
    recap = _recap(first.stdout)
    assert recap["failed"] == 0 and recap["changed"] > 0


def test_second_run_changes_nothing(provisioned: dict) -> None:
    second = provisioned["second"]
    assert second.returncode == 0, second.stdout[-4000:]
    assert _recap(second.stdout)["changed"] == 0, second.stdout[-4000:]


def test_edge_serves_with_the_lab_pki(provisioned: dict) -> None:
    ca = provisioned["dir"] / "pki" / "ca" / "ca-bundle.crt"
    ctx = ssl.create_default_context(cafile=str(ca))
    r = httpx.get(f"https://127.0.0.1:{EDGE_HTTPS}/nope", verify=ctx, timeout=10)
    assert r.status_code == 404 and r.json()["type"] == "urn:seclab:problem:not-found"
    assert r.headers["strict-transport-security"] == "max-age=63072000; includeSubDomains"
    conf = provisioned["conf_dir"] / "nginx.conf"
    assert oct(conf.stat().st_mode & 0o777) == "0o640"  # DevSec nginx-02
    status = subprocess.run(
        check=False, args=["supervisorctl", "status", PROGRAM], capture_output=True, text=True
    ).stdout
    assert " RUNNING " in status


def test_certificate_change_reloads_without_restart(provisioned: dict) -> None:
    """A re-issued edge certificate is served after the next run, by the same master process."""
    pki = provisioned["dir"] / "pki"
    pid_before = subprocess.run(  # noqa: PLW1510 - exit status inspected
        ["supervisorctl", "pid", PROGRAM], capture_output=True, text=True
    ).stdout.strip()
    (pki / "certs" / "edge.crt").unlink()  # `ensure` re-issues a missing certificate
    third = _play(provisioned["vars"])
    assert third.returncode == 0, third.stdout[-4000:]
    assert "Send the reload signal to the edge" in third.stdout
    pid_after = subprocess.run(  # noqa: PLW1510 - exit status inspected
        ["supervisorctl", "pid", PROGRAM], capture_output=True, text=True
    ).stdout.strip()
    assert pid_before == pid_after
    new_leaf = (pki / "certs" / "edge.crt").read_text()
    served = ssl.get_server_certificate(("127.0.0.1", EDGE_HTTPS))
    assert served.strip() == new_leaf.strip()
