"""Flower on the live lab: lab-admin only through the edge (https://localhost/flower/), loopback-only behind it.

Runs against the provisioned lab: needs root (the lab users' passwords and lab-admin's TOTP seed are
root-only). Tokens come from the lab's identity provider like `./lab token`. What is proved: a lab-admin
reads Flower's pages (HTML, static files, the task table's query) through the WAF; a user gets 403, no
or a bad token 401, both problem+json from the edge; Flower's control API and the app's check route are
closed to clients; Flower listens on 127.0.0.1 only and presents its lab certificate.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from labdef import LabDefinition, load

pytestmark = pytest.mark.integration

CA = Path("/etc/seclab/pki/ca/ca-bundle.crt")
EDGE = "https://localhost"


@pytest.fixture(scope="module")
def lab() -> LabDefinition:
    lab = load()
    reason = None
    if not (Path(lab.paths.etc) / "app.env").is_file() or not CA.is_file():
        reason = "lab not provisioned: run ./lab up"
    elif os.geteuid() != 0:
        reason = "needs root: the lab users' passwords and TOTP seeds are root-only"
    if reason:
        if os.environ.get("SECLAB_REQUIRE_LAB") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return lab


def _token(lab: LabDefinition, role: str) -> str:
    """A token of the first lab.yml user with `role`. A lab-admin's TOTP code is accepted once per
    30 s step (replay protection), and other tests may use the same step: retry on the next step."""
    from labdef.errors import LabError
    from labdef.tokens import get_access_token

    user = next(u.username for u in lab.users if role in u.roles)
    for attempt in range(4):
        try:
            return get_access_token(lab, user)
        except LabError:
            if attempt == 3 or role != "lab-admin":
                raise
            time.sleep(31 - time.time() % 30)
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def admin(lab: LabDefinition) -> dict[str, str]:
    return {"Authorization": f"Bearer {_token(lab, 'lab-admin')}"}


@pytest.fixture(scope="module")
def user(lab: LabDefinition) -> dict[str, str]:
    return {"Authorization": f"Bearer {_token(lab, 'user')}"}


@pytest.fixture(scope="module")
def edge(lab: LabDefinition) -> Any:
    with httpx.Client(base_url=EDGE, verify=ssl.create_default_context(cafile=str(CA)), timeout=30) as c:
        yield c


def _problem(r: httpx.Response, status: int, cause: str) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["type"] == f"urn:seclab:problem:{cause}" and body["status"] == status
    assert body["request_id"] == r.headers["x-request-id"]
    return body


def test_lab_admin_reads_flower_through_the_edge(edge: httpx.Client, admin: dict[str, str]) -> None:
    r = edge.get("/flower/", headers=admin)
    assert r.status_code == 200, r.text[:300]
    assert r.headers["content-type"].startswith("text/html")
    assert "<title>Workers · Flower</title>" in r.text
    assert 'href="/flower/static/' in r.text, "Flower must build its links under the /flower/ prefix"
    # The edge's headers on Flower's pages: its own scripts only, never framed, never cached.
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-store"
    assert "server" not in r.headers or "tornado" not in r.headers["server"].lower()

    js = edge.get("/flower/static/js/flower.js", headers=admin)
    assert js.status_code == 200 and "url_prefix" in js.text
    workers = edge.get("/flower/workers", params={"json": "1"}, headers=admin)
    assert workers.status_code == 200 and isinstance(workers.json()["data"], list)


def test_task_table_query_passes_the_waf(edge: httpx.Client, admin: dict[str, str]) -> None:
    """The one POST the console needs (DataTables), with Flower's XSRF cookie, as a browser sends it."""
    edge.cookies.clear()
    page = edge.get("/flower/tasks", headers=admin)
    assert page.status_code == 200 and "Tasks" in page.text
    xsrf = page.cookies.get("_xsrf")
    assert xsrf, "Flower sets its XSRF cookie"
    set_cookie = page.headers["set-cookie"].lower()
    assert "secure" in set_cookie and "samesite=strict" in set_cookie
    form: dict[str, str] = {"draw": "1", "start": "0", "length": "15", "order[0][column]": "6",
                            "order[0][dir]": "desc", "search[value]": "state:FAILURE", "search[regex]": "false"}
    for i, name in enumerate(["name", "uuid", "state", "args", "kwargs", "result", "received", "started",
                              "runtime", "worker"]):
        form |= {f"columns[{i}][data]": name, f"columns[{i}][name]": "", f"columns[{i}][searchable]": "true",
                 f"columns[{i}][orderable]": "true", f"columns[{i}][search][value]": "",
                 f"columns[{i}][search][regex]": "false"}
    r = edge.post("/flower/tasks/datatable", data=form,
                  headers={**admin, "X-Xsrftoken": xsrf, "X-Requested-With": "XMLHttpRequest"})
    assert r.status_code == 200, r.text[:300]
    assert r.json()["draw"] == 1 and "recordsTotal" in r.json()


def test_other_roles_get_403_problem(edge: httpx.Client, user: dict[str, str]) -> None:
    body = _problem(edge.get("/flower/", headers=user), 403, "forbidden")
    assert "lab-admin" in body["detail"]
    _problem(edge.get("/flower/static/js/flower.js", headers=user), 403, "forbidden")


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not.a.jwt"}, {"Authorization": "Basic YTpi"}],
                         ids=["no-token", "bad-token", "basic"])
def test_no_valid_token_gets_401_problem(edge: httpx.Client, headers: dict[str, str]) -> None:
    r = edge.get("/flower/", headers=headers)
    _problem(r, 401, "unauthenticated")
    assert r.headers["www-authenticate"].startswith('Bearer realm="seclab"')
    assert "<html" not in r.text.lower()


def test_flower_control_api_is_closed_even_to_lab_admin(edge: httpx.Client, admin: dict[str, str]) -> None:
    _problem(edge.post("/flower/api/worker/shutdown/worker@localhost", headers=admin), 405, "method-not-allowed")
    _problem(edge.post("/flower/api/task/revoke/abc", headers=admin), 405, "method-not-allowed")
    # Flower's own API refuses reads too: it runs without --auth, so its API stays off.
    assert edge.get("/flower/api/workers", headers=admin).status_code == 401


def test_the_access_check_route_is_not_public(edge: httpx.Client, admin: dict[str, str]) -> None:
    _problem(edge.get("/api/v1/admin/flower-auth", headers=admin), 404, "not-found")
    _problem(edge.get("/.seclab-auth/flower", headers=admin), 404, "not-found")


def test_waf_still_guards_flower_for_the_admin(lab: LabDefinition, edge: httpx.Client,
                                               admin: dict[str, str]) -> None:
    from seclab.commands.attack import deployed_setting, waf_conf_dir

    # The WAF must be blocking: a defence demo left in detection-only mode is a finding, not a skip.
    assert deployed_setting(waf_conf_dir(lab), "SecRuleEngine") == "On", "the WAF is in detection-only mode"
    _problem(edge.get("/flower/tasks", params={"q": "1' OR 1=1-- -"}, headers=admin), 403, "waf-blocked")


def _listeners(port: int) -> set[str]:
    """Local addresses in LISTEN state on `port`, from /proc/net/tcp and tcp6."""
    found: set[str] = set()
    for name, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        path = Path("/proc/net") / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr_hex, port_hex = local.split(":")
            if state != "0A" or int(port_hex, 16) != port:  # 0A = TCP_LISTEN
                continue
            raw = bytes.fromhex(addr_hex)
            # /proc prints each 32-bit word in host (little-endian) order.
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            found.add(socket.inet_ntop(family, raw))
    return found


def test_flower_listens_on_loopback_only(lab: LabDefinition) -> None:
    addrs = _listeners(lab.ports.flower)
    assert addrs, f"nothing listens on port {lab.ports.flower}: is Flower running?"
    assert addrs <= {"127.0.0.1", "::1"}, f"Flower listens beyond loopback: {sorted(addrs)}"
    # And no address of this host other than loopback reaches it.
    others = subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=False, timeout=10).stdout.split()
    for addr in others:
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        with socket.socket(family) as s:
            s.settimeout(1)
            assert s.connect_ex((addr, lab.ports.flower)) != 0, f"Flower answers on {addr}"


def test_flower_presents_its_lab_certificate(lab: LabDefinition) -> None:
    """What the edge verifies (proxy_ssl_name flower): TLS with the `flower` leaf of the lab CA."""
    ctx = ssl.create_default_context(cafile=str(CA))
    with socket.create_connection(("127.0.0.1", lab.ports.flower), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname="flower") as tls:
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    with pytest.raises(httpx.HTTPError):  # no plain-HTTP Flower behind the edge's back
        httpx.get(f"http://127.0.0.1:{lab.ports.flower}/flower/healthcheck", timeout=5)
