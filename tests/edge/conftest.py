"""Fixtures for the edge tests: a lab PKI in tmp, the rendered edge, and live test instances.

Live instances (ports fixed by the brief: edge 127.0.0.1:18443/18480, mTLS backend 127.0.0.1:18000,
fake IdP on a unix socket) are started by the tests and stopped at the end of their module/session.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edge.render import render
from labdef import LabDefinition, load
from pki import build_plan, ensure

REPO = Path(__file__).resolve().parents[2]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
EDGE_HTTPS = 18443
EDGE_HTTP = 18480
BACKEND_PORT = 18000


@pytest.fixture(scope="session")
def lab() -> LabDefinition:
    return load(REPO / "lab.yml")


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory: pytest.TempPathFactory, lab: LabDefinition) -> Path:
    d = tmp_path_factory.mktemp("edge-pki") / "pki"
    ensure(build_plan(lab), d, private_group=None)
    return d


def run_dir(prefix: str) -> Path:
    """A temp dir the unprivileged nginx workers (nobody) can traverse: sockets and temp files live here."""
    d = Path(tempfile.mkdtemp(prefix=prefix))
    d.chmod(0o755)
    return d


def worker_user() -> str:
    """As root, workers drop to nobody (like www-data on the host); otherwise nginx keeps our user."""
    return "nobody nogroup" if os.geteuid() == 0 else ""


def give_to_workers(path: Path) -> None:
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(path, nobody.pw_uid, nobody.pw_gid)


def render_edge(lab: Any, conf_dir: Path, pki_dir: Path, **overrides: Any) -> Path:
    """Render the edge for a throw-away instance on 127.0.0.1 with everything under conf_dir."""
    temp = conf_dir / "tmp"
    temp.mkdir(parents=True, exist_ok=True)
    give_to_workers(temp)
    values: dict[str, Any] = {
        "edge_pki_dir": str(pki_dir),
        "edge_waf_enabled": False,
        "edge_temp_dir": str(temp),
        "edge_pid_file": str(conf_dir / "nginx.pid"),
        "edge_error_log": str(conf_dir / "error.log"),
        "edge_access_log": str(conf_dir / "access.json"),
        "edge_listen_address": "127.0.0.1",
        "edge_listen_ipv6": False,
        "edge_https_port": EDGE_HTTPS,
        "edge_http_port": EDGE_HTTP,
        "edge_app_upstream": f"127.0.0.1:{BACKEND_PORT}",
        "edge_user": worker_user(),
        "edge_worker_processes": 1,
        "edge_stub_status_listen": "",  # 8088 belongs to the lab; the tests do not need it
    }
    values.update(overrides)
    return render(lab, conf_dir, **values)


def nginx_test(conf: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        check=False, args=[NGINX, "-t", "-c", str(conf)], capture_output=True, text=True, timeout=60
    )


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def wait_for(check: Any, what: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up within {timeout}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@dataclass
class Upstreams:
    backend: subprocess.Popen[bytes]
    idp: subprocess.Popen[bytes]
    idp_socket: Path


def backend_command(pki: Path) -> list[str]:
    """The app's uvicorn command with the mTLS flags the app role must use (see the report)."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "tests.edge.fake_upstreams:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(BACKEND_PORT),
        "--ssl-keyfile",
        str(pki / "private" / "app.key"),
        "--ssl-certfile",
        str(pki / "certs" / "app.chain.crt"),
        "--ssl-ca-certs",
        str(pki / "ca" / "ca-bundle.crt"),
        "--ssl-cert-reqs",
        "2",  # ssl.CERT_REQUIRED: no client certificate from the lab CA, no TLS
        "--no-server-header",
        "--log-level",
        "warning",
    ]


@pytest.fixture(scope="session")
def upstreams(pki_dir: Path) -> Iterator[Upstreams]:
    for port in (BACKEND_PORT,):
        if port_open(port):
            pytest.fail(f"127.0.0.1:{port} is busy: stop what runs there first")
    rd = run_dir("seclab-edge-up-")
    sock = rd / "idp.sock"
    log = open(rd / "upstreams.log", "wb")  # noqa: SIM115 - closed below
    backend = subprocess.Popen(backend_command(pki_dir), cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    idp = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "tests.edge.fake_upstreams:idp",
            "--uds",
            str(sock),
            "--no-server-header",
            "--log-level",
            "warning",
        ],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: port_open(BACKEND_PORT), "mTLS test backend", backend)
        wait_for(sock.exists, "fake IdP", idp)
        sock.chmod(0o666)  # nginx workers (nobody) connect to it
        yield Upstreams(backend=backend, idp=idp, idp_socket=sock)
    finally:
        stop(backend)
        stop(idp)
        log.close()
        shutil.rmtree(rd, ignore_errors=True)


@dataclass
class EdgeInstance:
    conf_dir: Path
    proc: subprocess.Popen[bytes]

    @property
    def access_log(self) -> Path:
        return self.conf_dir / "access.json"

    @property
    def error_log(self) -> Path:
        return self.conf_dir / "error.log"


def start_edge(conf: Path) -> EdgeInstance:
    for port in (EDGE_HTTPS, EDGE_HTTP):
        if port_open(port):
            pytest.fail(f"127.0.0.1:{port} is busy: stop what runs there first")
    check = nginx_test(conf)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen([NGINX, "-c", str(conf), "-g", "daemon off;"], stderr=subprocess.PIPE)
    wait_for(lambda: port_open(EDGE_HTTPS) and port_open(EDGE_HTTP), "edge nginx", proc)
    return EdgeInstance(conf_dir=conf.parent, proc=proc)
