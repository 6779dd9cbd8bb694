"""DevSec nginx-baseline (nginx-01 .. nginx-17) on the lab edge, read from `nginx -T` on the host.

The configuration checks live in nginx_checks.py (pure functions, also run against the rendered
templates in tests/seclab/report); this module adds what only the host can tell: file modes, processes.
Until the edge role runs on the host, every test here is xfail "not yet provisioned: edge issue"
and still runs, so it turns into a real pass/fail the moment the lab's nginx.conf appears.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra import nginx_checks as ck
from tests.infra.conftest import own_processes
from tests.infra.nginxconf import Directive, parse_dump

NGINX_CONF = "/etc/nginx/nginx.conf"


@pytest.fixture(scope="module")
def nginx_conf(host: Any) -> list[Directive]:
    """Every directive nginx would load (`nginx -T` expands includes), as (name, args, block path)."""
    out = host.run(f"nginx -T -c {NGINX_CONF} 2>/dev/null")
    if out.rc != 0:
        pytest.fail(f"`nginx -T` failed ({out.rc}): the configuration does not load")
    return parse_dump(out.stdout, NGINX_CONF)



def _ok(problems: list[str]) -> None:
    assert not problems, "; ".join(problems)


def test_nginx_01_worker_user(host: Any, nginx_conf: list[Directive]) -> None:
    """Workers parse every request: they must not be root (DevSec nginx-01, ASVS 4.0.3 V1.2.1)."""
    _ok(ck.nginx_01_user(nginx_conf))
    user = [d for d in nginx_conf if d.name == "user"][-1].args[0]
    assert host.user(user).exists, f"worker user {user} does not exist"
    workers = host.run("ps -o user= -o args= -C nginx").stdout.splitlines()
    worker_users = {w.split()[0] for w in workers if "worker process" in w}
    assert worker_users, "no nginx worker process runs"
    assert "root" not in worker_users, f"workers run as {worker_users}"


def test_nginx_02_conf_permissions(host: Any) -> None:
    """nginx.conf root:root, nothing for others (DevSec nginx-02): it names key paths and upstreams."""
    f = host.file(NGINX_CONF)
    assert f.user == "root" and f.group == "root", f"owned by {f.user}:{f.group}"
    assert f.mode & 0o007 == 0, f"mode {oct(f.mode)} gives others access"


def test_nginx_03_no_default_site(host: Any) -> None:
    """The distribution's default site would answer with its own page (DevSec nginx-03)."""
    for path in ("/etc/nginx/conf.d/default.conf", "/etc/nginx/sites-enabled/default"):
        assert not host.file(path).exists, f"{path} exists"


def _master_configs(ps_args: str) -> list[str]:
    """The `-c` configuration of each nginx master (nginx's default file when none is given)."""
    configs = []
    for line in ps_args.splitlines():
        if line.startswith("nginx: master"):
            args = line.split()
            configs.append(args[args.index("-c") + 1] if "-c" in args[:-1] else NGINX_CONF)
    return configs


def test_nginx_04_single_master(host: Any) -> None:
    """One nginx master per lab-managed configuration: the edge and, when centralized logging is on, the
    log engine's loopback mTLS gateway (docs/logging.md). Any other master, or a second one for the same
    configuration, would be unmanaged and unhardened (DevSec nginx-04)."""
    import labdef

    lab = labdef.load()
    managed = {NGINX_CONF}
    if lab.logging.engine != "none":
        managed.add(f"{lab.paths.etc}/logsearch/gateway.conf")
    configs = _master_configs(own_processes(host))
    assert configs.count(NGINX_CONF) == 1, f"{configs.count(NGINX_CONF)} edge nginx masters"
    assert set(configs) <= managed, f"unmanaged nginx masters: {sorted(set(configs) - managed)}"
    assert len(configs) == len(set(configs)), f"two masters for one configuration: {configs}"


def test_nginx_05_server_tokens(nginx_conf: list[Directive]) -> None:
    _ok(ck.nginx_05_server_tokens(nginx_conf))


def test_nginx_06_buffers(nginx_conf: list[Directive], devsec_input: Any) -> None:
    inputs = {n: devsec_input("nginx-06", n) for n in
              ("client_max_body_size", "client_body_buffer_size", "large_client_header_buffers")}
    _ok(ck.nginx_06_buffers(nginx_conf, inputs))


def test_nginx_07_limit_conn(nginx_conf: list[Directive], waived: Any) -> None:
    waived("nginx-07", "limit_conn default 5")
    _ok(ck.nginx_07_limit_conn(nginx_conf))


def test_nginx_08_frame_options(nginx_conf: list[Directive], waived: Any) -> None:
    waived("nginx-08", "SAMEORIGIN")
    _ok(ck.nginx_08_frame_options(nginx_conf))


def test_nginx_09_xss_protection(nginx_conf: list[Directive], waived: Any) -> None:
    waived("nginx-09", "1; mode=block")
    _ok(ck.nginx_09_xss_protection(nginx_conf))


def test_nginx_10_nosniff(nginx_conf: list[Directive]) -> None:
    _ok(ck.nginx_10_nosniff(nginx_conf))


def test_nginx_12_tls(nginx_conf: list[Directive], waived: Any) -> None:
    for part in ("ssl_ciphers", "ssl_prefer_server_ciphers on", "ssl_dhparam"):
        waived("nginx-12", part)
    _ok(ck.nginx_12_tls(nginx_conf))


def test_nginx_13_hsts(nginx_conf: list[Directive], waived: Any) -> None:
    waived("nginx-13", "max-age=15768000")
    _ok(ck.nginx_13_hsts(nginx_conf))


def test_nginx_14_http_methods(nginx_conf: list[Directive], devsec_input: Any) -> None:
    _ok(ck.nginx_14_methods(nginx_conf, devsec_input("nginx-14", "http_methods")))


def test_nginx_15_csp(nginx_conf: list[Directive], waived: Any) -> None:
    waived("nginx-15", "script-src 'self'")
    _ok(ck.nginx_15_csp(nginx_conf))


def test_nginx_16_cookie_flags(nginx_conf: list[Directive], waived: Any) -> None:
    waived("nginx-16", "set_cookie_flag")
    _ok(ck.nginx_16_cookies(nginx_conf))


def test_nginx_17_timeouts(nginx_conf: list[Directive], devsec_input: Any) -> None:
    _ok(ck.nginx_17_timeouts(nginx_conf, {"keepalive_timeout": devsec_input("nginx-17", "keepalive_timeout")}))
