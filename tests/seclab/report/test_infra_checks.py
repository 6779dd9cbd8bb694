"""The compliance checks themselves, without a host: they pass on the lab's rendered edge
configuration and fail on a stock one, and every waiver and input names a catalogued control.

Why: until the edge role runs on the host, tests/infra/test_nginx.py is xfail "not yet provisioned";
this proves now that those checks can pass (on edge/*.j2 as rendered from lab.yml) and can fail.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.render import render
from labdef import load
from seclab.report.inputs import control_of, load_catalog
from tests.infra import nginx_checks as ck
from tests.infra.nginxconf import parse_dump

REPO = Path(__file__).resolve().parents[3]
STOCK = """
user www-data;
worker_processes auto;
http {
    sendfile on;
    ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers on;
    server { listen 80 default_server; location / { root /var/www/html; } }
}
"""
INPUTS_06 = {"client_max_body_size": "65536", "client_body_buffer_size": "65536", "large_client_header_buffers": "4 8k"}
METHODS = "GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS"


def run_all(conf: list) -> dict[str, list[str]]:
    return {
        "nginx-01": ck.nginx_01_user(conf), "nginx-05": ck.nginx_05_server_tokens(conf),
        "nginx-06": ck.nginx_06_buffers(conf, INPUTS_06), "nginx-07": ck.nginx_07_limit_conn(conf),
        "nginx-08": ck.nginx_08_frame_options(conf), "nginx-09": ck.nginx_09_xss_protection(conf),
        "nginx-10": ck.nginx_10_nosniff(conf), "nginx-12": ck.nginx_12_tls(conf), "nginx-13": ck.nginx_13_hsts(conf),
        "nginx-14": ck.nginx_14_methods(conf, METHODS), "nginx-15": ck.nginx_15_csp(conf),
        "nginx-16": ck.nginx_16_cookies(conf), "nginx-17": ck.nginx_17_timeouts(conf, {"keepalive_timeout": "15"}),
    }


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> list:
    out = tmp_path_factory.mktemp("edge")
    render(load(REPO / "lab.yml"), out, edge_pki_dir="/tmp/pki", edge_waf_enabled=False, edge_conf_dir=str(out))
    files = [out / "nginx.conf", *sorted((out / "snippets").glob("*.conf"))]
    dump = "".join(f"# configuration file {p}:\n{p.read_text()}\n" for p in files)
    return parse_dump(dump, str(out / "nginx.conf"))


def test_checks_pass_on_rendered_edge(rendered: list) -> None:
    results = run_all(rendered)
    assert {k: v for k, v in results.items() if v} == {}


def test_checks_fail_on_stock_config() -> None:
    results = run_all(parse_dump(f"# configuration file /etc/nginx/nginx.conf:\n{STOCK}"))
    failing = {k for k, v in results.items() if v}
    assert failing >= {"nginx-05", "nginx-06", "nginx-07", "nginx-08", "nginx-09", "nginx-10", "nginx-12",
                       "nginx-13", "nginx-14", "nginx-15", "nginx-17"}
    assert any("TLSv1 " in p for p in results["nginx-12"])


def test_check_catches_a_single_weakening(rendered: list) -> None:
    """Flip one thing in the good configuration: exactly that control fails."""
    from tests.infra.nginxconf import Directive

    weakened = [Directive(d.name, ("on",), d.context) if d.name == "server_tokens" else d for d in rendered]
    weakened += [Directive("add_header", ("Set-Cookie", "sid=1"), ("http",))]
    failing = {k for k, v in run_all(weakened).items() if v}
    assert failing == {"nginx-05", "nginx-16"}


def test_csp_semicolons_inside_quotes_are_one_value() -> None:
    conf = parse_dump('# configuration file /x.conf:\nhttp { add_header Content-Security-Policy "default-src \'none\'; frame-ancestors \'none\'" always; }')
    assert ck.nginx_15_csp(conf) == []


def test_catalog_consistent() -> None:
    controls, waivers = load_catalog()
    for entry in waivers["waivers"] + waivers["inputs"]:
        assert entry["control"] in controls, entry
    for na in waivers["not_applicable"]:
        assert na["controls"] and set(na["controls"]) <= set(controls), na
        assert all(na.get(k) for k in ("condition", "instead", "reason", "reference")), na
    for cid in [f"nginx-{i:02d}" for i in range(1, 18)] + [f"postgres-{i:02d}" for i in range(2, 21)]:
        assert cid in controls, cid
    assert control_of("test_postgres_16_logging[local-log_duration]") == "postgres-16"
    assert control_of("test_helper") is None
    # Every control that is not retired has at least one test function in tests/infra.
    names = " ".join(p.read_text() for p in (REPO / "tests" / "infra").glob("test_*.py"))
    for cid, meta in controls.items():
        if not meta.get("retired"):
            assert f"def test_{cid.replace('-', '_')}_" in names, f"{cid} has no test"


# --- net-01: platform listener waivers match strictly -------------------------------------------------

SS = """\
LISTEN 0 511 0.0.0.0:443 0.0.0.0:* users:(("nginx",pid=1599,fd=10),("nginx",pid=1529,fd=10))
LISTEN 0 511 [::]:80 [::]:* users:(("nginx",pid=1599,fd=9))
LISTEN 0 2048 127.0.0.1:8000 0.0.0.0:* users:(("uvicorn",pid=1527,fd=3))
LISTEN 0 128 0.0.0.0:2024 0.0.0.0:*
"""
AGENT_ARGS = "/process_api --firecracker-init --addr 0.0.0.0:2024 --listen-vsock-port 2024"


def _net01(ss: str, *, comm: dict[int, str] | None = None, cmdline: dict[int, str] | None = None,
           listener: dict | None = None) -> tuple[list[str], list[str]]:
    from tests.infra import net_checks as nc

    waivers = nc.listener_waivers(load_catalog()[1])
    if listener is not None:
        waivers = [{"control": "net-01", "listener": listener}]
    comm = {1: "process_api"} if comm is None else comm
    cmdline = {1: AGENT_ARGS} if cmdline is None else cmdline
    lab = load(REPO / "lab.yml")
    return nc.exposed(nc.parse_ss(ss), {lab.ports.edge_https, lab.ports.edge_http}, waivers,
                      comm=comm.get, cmdline=cmdline.get, lab_ports=lab.ports.model_dump().values())


def test_net01_waiver_in_catalog_matches_the_platform_agent() -> None:
    bad, waived = _net01(SS)
    assert bad == [] and waived == ["0.0.0.0:2024 (?)"]


@pytest.mark.parametrize(("what", "kwargs", "ss"), [
    ("another process name at PID 1", {"comm": {1: "sshd"}}, SS),
    ("PID 1 does not declare the address", {"cmdline": {1: "/process_api --addr 0.0.0.0:2025"}}, SS),
    ("PID 1 unreadable", {"comm": {}, "cmdline": {}}, SS),
    ("the agent's name on another port", {}, SS.replace("0.0.0.0:2024", "0.0.0.0:2025")),
    ("another address", {}, SS.replace("0.0.0.0:2024 ", "192.0.2.7:2024 ")),
    ("ss names another owner", {}, SS.replace('0.0.0.0:2024 0.0.0.0:*',
                                               '0.0.0.0:2024 0.0.0.0:* users:(("python3",pid=4242,fd=3))')),
    ("the right name with another PID", {}, SS.replace('0.0.0.0:2024 0.0.0.0:*',
                                                        '0.0.0.0:2024 0.0.0.0:* users:(("process_api",pid=77,fd=3))')),
])
def test_net01_waiver_is_strict(what: str, kwargs: dict, ss: str) -> None:
    bad, waived = _net01(ss, **kwargs)
    assert bad and not waived, what


def test_net01_other_listeners_still_fail() -> None:
    """Waiver or not: the app on 0.0.0.0, or nginx on a non-edge port, is a finding."""
    ss = SS + 'LISTEN 0 2048 0.0.0.0:8000 0.0.0.0:* users:(("uvicorn",pid=1527,fd=3))\n' \
              'LISTEN 0 511 0.0.0.0:8443 0.0.0.0:* users:(("nginx",pid=1599,fd=12))\n'
    bad, _ = _net01(ss)
    assert bad == ["0.0.0.0:8000 (uvicorn)", "0.0.0.0:8443 (nginx)"]
    # A waiver naming a lab port never applies, even when everything else matches.
    bad, waived = _net01("LISTEN 0 128 0.0.0.0:8000 0.0.0.0:*\n", cmdline={1: "/process_api --addr 0.0.0.0:8000"},
                         listener={"address": "0.0.0.0", "port": 8000, "process": "process_api", "pid": 1})
    assert bad == ["0.0.0.0:8000 (?)"] and not waived


@pytest.mark.parametrize(("directive", "ok"), [
    ("proxy_cookie_flags _xsrf secure samesite=strict;", True),  # CSRF token: script-readable by design
    ("proxy_cookie_flags _xsrf samesite=strict;", False),  # ... but never over plain http
    ("proxy_cookie_flags ~ secure httponly samesite=strict;", True),
    ("proxy_cookie_flags ~ secure samesite=strict;", False),  # any other cookie must be HttpOnly
    ("proxy_cookie_flags session secure;", False),
])
def test_nginx_16_only_the_csrf_cookie_may_skip_httponly(directive: str, ok: bool) -> None:
    conf = parse_dump(f"# configuration file /x.conf:\nhttp {{ server {{ location /flower/ {{ {directive} }} }} }}")
    assert (ck.nginx_16_cookies(conf) == []) is ok


@pytest.mark.parametrize(("addr", "loopback"), [
    ("127.0.0.1", True), ("::1", True), ("::ffff:127.0.0.1", True),
    ("0.0.0.0", False), ("::", False), ("*", False), ("::ffff:10.0.0.1", False), ("192.0.2.2", False),
])
def test_net01_ipv4_mapped_loopback_counts_as_loopback(addr: str, loopback: bool) -> None:
    from tests.infra.net_checks import is_loopback

    assert is_loopback(addr) is loopback
