"""The rendered edge configuration: Mozilla settings, headers, limits, routes, documented variables,
and `nginx -t` with certificates from a lab PKI in tmp. No process is started here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jinja2.meta
import pytest
import yaml

from edge.render import DEFAULTS_FILE, TEMPLATE_DIR, TEMPLATES, environment, render, template_vars
from labdef import LabDefinition
from tests.conftest import need

from .conftest import nginx_test, render_edge

MOZILLA_INTERMEDIATE_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)


def directives(text: str) -> list[str]:
    """Directive lines without comments and surrounding blanks."""
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip() if not line.strip().startswith("add_header") else line.strip()
        if line:
            out.append(line)
    return out


@pytest.fixture
def rendered(tmp_path: Path, lab: LabDefinition) -> dict[str, str]:
    """Production defaults (all addresses, ports 443/80, WAF on) rendered into tmp."""
    render(lab, tmp_path, edge_listen_ipv6=False)
    return {dst: (tmp_path / dst).read_text() for dst in TEMPLATES.values()}


def test_mozilla_intermediate_tls(rendered: dict[str, str]) -> None:
    d = directives(rendered["nginx.conf"])
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in d
    assert f"ssl_ciphers {MOZILLA_INTERMEDIATE_CIPHERS};" in d
    assert "ssl_ecdh_curve X25519:prime256v1:secp384r1;" in d
    assert "ssl_prefer_server_ciphers off;" in d
    assert "ssl_session_tickets off;" in d
    assert "ssl_session_timeout 1d;" in d
    assert any(x.startswith("ssl_session_cache shared:") for x in d)
    assert "ssl_stapling off;" in d
    assert "ssl_certificate /etc/seclab/pki/certs/edge.chain.crt;" in d
    assert "ssl_certificate_key /etc/seclab/pki/private/edge.key;" in d
    assert "server_tokens off;" in d
    assert "gzip off;" in d


def test_modern_profile_is_tls13_only(tmp_path: Path, lab: LabDefinition) -> None:
    render(lab, tmp_path, edge_tls_profile="modern", edge_listen_ipv6=False)
    d = directives((tmp_path / "nginx.conf").read_text())
    assert "ssl_protocols TLSv1.3;" in d
    assert not any(x.startswith("ssl_ciphers") for x in d)


def test_listens_on_all_addresses_and_redirects_with_308(rendered: dict[str, str]) -> None:
    d = directives(rendered["nginx.conf"])
    assert "listen 443 ssl http2 default_server;" in d
    assert "listen 80 default_server;" in d
    assert "return 308 https://localhost$request_uri;" in d


def test_stub_status_only_on_loopback(rendered: dict[str, str]) -> None:
    d = directives(rendered["nginx.conf"])
    assert "listen 127.0.0.1:8088;" in d and "stub_status;" in d
    assert [x for x in d if x.startswith("listen ")] == [
        "listen 127.0.0.1:8088;",
        "listen 80 default_server;",
        "listen 443 ssl http2 default_server;",
    ]


def test_security_headers_always_sent(rendered: dict[str, str]) -> None:
    h = rendered["snippets/seclab-security-headers.conf"]
    expected = {
        "Strict-Transport-Security": '"max-age=63072000; includeSubDomains"',
        "Content-Security-Policy": "$edge_csp",
        "X-Content-Type-Options": '"nosniff"',
        "X-Frame-Options": '"DENY"',
        "Referrer-Policy": '"no-referrer"',
        "Cross-Origin-Resource-Policy": '"same-origin"',
        "Cache-Control": '"no-store"',
        "X-Request-ID": "$edge_request_id",
        "Retry-After": "$edge_retry_after",
    }
    lines = [x for x in directives(h) if x.startswith("add_header")]
    for name, value in expected.items():
        assert f"add_header {name} {value} always;" in lines, name
    perm = next(x for x in lines if x.startswith("add_header Permissions-Policy"))
    assert perm.endswith(" always;") and "camera=()" in perm and "=(self" not in perm
    assert all(x.endswith(" always;") for x in lines)
    # The API's CSP, from the map in nginx.conf.
    assert "default \"default-src 'none'; frame-ancestors 'none'" in rendered["nginx.conf"]


def test_no_add_header_below_server_level(rendered: dict[str, str]) -> None:
    """nginx drops inherited add_header in any block declaring its own: keep them all in the snippet."""
    conf = (
        rendered["nginx.conf"]
        + rendered["snippets/seclab-problems.conf"]
        + rendered["snippets/seclab-proxy-app.conf"]
        + rendered["snippets/seclab-problem-codes.conf"]
        + rendered["snippets/seclab-flower.conf"]
    )
    https = conf.split("listen 443 ssl", 1)[1]
    assert not [x for x in directives(https) if x.startswith("add_header")]


def test_request_limits_from_the_lab_definition(tmp_path: Path, lab: LabDefinition) -> None:
    data = lab.model_dump()
    data["limits"]["body_max_bytes"] = 2048
    data["limits"]["rate_limits"]["per_address_per_minute"] = 7
    render(LabDefinition.model_validate(data), tmp_path, edge_listen_ipv6=False)
    d = directives((tmp_path / "nginx.conf").read_text())
    assert "client_max_body_size 2048;" in d
    assert "client_body_buffer_size 2048;" in d
    assert any(x.startswith("limit_req_zone $edge_message_key") and "rate=7r/m" in x for x in d)
    for directive in (
        "client_header_timeout",
        "client_body_timeout",
        "send_timeout",
        "keepalive_timeout",
        "large_client_header_buffers",
    ):
        assert any(x.startswith(directive + " ") for x in d), directive
    assert "limit_req_status 429;" in d
    assert any(x.startswith("limit_conn edge_conn ") for x in d)


def test_routes_and_upstream_mtls(rendered: dict[str, str]) -> None:
    d = directives(rendered["nginx.conf"])
    assert "proxy_pass https://seclab_app/api/;" in d
    # Keycloak over TLS on loopback, its certificate verified by name; the master realm never routed.
    assert "proxy_pass https://seclab_idp/realms/;" in d and "proxy_pass https://seclab_idp/resources/;" in d
    assert "location ^~ /realms/master/ {" in rendered["nginx.conf"]
    idp = directives(rendered["snippets/seclab-proxy-idp.conf"])
    assert "proxy_ssl_verify on;" in idp and "proxy_ssl_name idp;" in idp
    assert not any(x.startswith("location /admin") for x in d)
    assert "server 127.0.0.1:8000;" in d and "server 127.0.0.1:8180;" in d
    assert "proxy_intercept_errors off;" in d
    joined = "\n".join(rendered.values())
    assert "proxy_intercept_errors on" not in joined
    app = directives(rendered["snippets/seclab-proxy-app.conf"])
    for line in (
        "proxy_ssl_protocols TLSv1.3;",
        "proxy_ssl_verify on;",
        "proxy_ssl_name app;",
        "proxy_ssl_certificate /etc/seclab/pki/certs/edge-client.chain.crt;",
        "proxy_ssl_certificate_key /etc/seclab/pki/private/edge-client.key;",
        "proxy_ssl_trusted_certificate /etc/seclab/pki/ca/ca-bundle.crt;",
    ):
        assert line in app, line


def test_waf_wiring_follows_the_switch(tmp_path: Path, lab: LabDefinition, rendered: dict[str, str]) -> None:
    on = directives(rendered["nginx.conf"])
    assert "modsecurity on;" in on
    assert "modsecurity_rules_file /etc/seclab/waf/main.conf;" in on
    assert "include /etc/seclab/waf/nginx/problem-pages.conf;" in on
    assert "load_module /usr/lib/nginx/modules/ngx_http_modsecurity_module.so;" in on
    render(lab, tmp_path, edge_waf_enabled=False, edge_listen_ipv6=False)
    off = (tmp_path / "nginx.conf").read_text() + (tmp_path / "snippets/seclab-problems.conf").read_text()
    assert "modsecurity" not in "\n".join(directives(off))


def test_problem_bodies_are_rfc9457_json(rendered: dict[str, str]) -> None:
    bodies = re.findall(r"return (\d{3}) '(.*)\\n';", rendered["snippets/seclab-problems.conf"])
    causes = set()
    for _code, body in bodies:
        doc = json.loads(body.replace("$status", "400").replace("$edge_request_id", "abc"))
        assert set(doc) >= {"type", "title", "status", "detail", "request_id"}
        causes.add(doc["type"].removeprefix("urn:seclab:problem:"))
    assert {"validation", "not-found", "payload-too-large", "rate-limited", "upstream-unavailable"} <= causes


def test_every_template_variable_is_a_documented_default() -> None:
    env = environment()
    raw = yaml.safe_load(DEFAULTS_FILE.read_text())
    used: set[str] = set()
    for src in TEMPLATES:
        used |= jinja2.meta.find_undeclared_variables(env.parse((TEMPLATE_DIR / src).read_text()))
    used -= {"lab", "ansible_managed"}
    assert used <= set(raw), sorted(used - set(raw))
    # Every default has a comment line right above it (the role's documentation).
    lines = DEFAULTS_FILE.read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^edge_[a-z0-9_]+:", line):
            assert lines[i - 1].startswith("#"), f"undocumented: {line}"


def test_unknown_override_is_an_error(lab: LabDefinition) -> None:
    with pytest.raises(ValueError):
        template_vars(lab, edge_no_such_thing=1)


def test_nginx_accepts_the_rendered_config(tmp_path: Path, lab: LabDefinition, pki_dir: Path) -> None:
    conf = render_edge(lab, tmp_path / "conf", pki_dir)
    result = nginx_test(conf)
    assert result.returncode == 0, result.stderr


def test_nginx_rejects_a_missing_certificate(tmp_path: Path, lab: LabDefinition) -> None:
    """The nginx -t check can fail: without the PKI it must."""
    conf = render_edge(lab, tmp_path / "conf", tmp_path / "no-pki")
    result = nginx_test(conf)
    assert result.returncode != 0 and "edge.chain.crt" in result.stderr


def test_nginx_accepts_the_config_with_the_waf(tmp_path: Path, lab: LabDefinition, pki_dir: Path) -> None:
    from waf_rules import render as waf

    need(Path(waf.MODSEC_MODULE).exists(), "the ModSecurity connector (libnginx-mod-http-modsecurity)")
    waf.render(lab, tmp_path / "waf", tmp_path / "audit.json", tmp_dir=str(tmp_path))
    conf = render_edge(
        lab,
        tmp_path / "conf",
        pki_dir,
        edge_waf_enabled=True,
        edge_waf_conf_dir=str(tmp_path / "waf"),
        edge_modules=[waf.MODSEC_MODULE],
    )
    result = nginx_test(conf)
    assert result.returncode == 0, result.stderr


def test_flower_route_is_lab_admin_only_over_verified_tls(rendered: dict[str, str]) -> None:
    conf = directives(rendered["nginx.conf"])
    assert any(x.startswith("include /") and x.endswith("/snippets/seclab-flower.conf;") for x in conf)
    assert "server 127.0.0.1:5555;" in conf
    flower = rendered["snippets/seclab-flower.conf"]
    # edge_conf_dir is the fixture's tmp dir: compare includes by their file name.
    route = [re.sub(r"^include /\S+/snippets/", "include snippets/", x)
             for x in directives(flower.split("location ^~ /flower/ {", 1)[1].split("\n}\n", 1)[0])]
    for line in (
        "auth_request /.seclab-auth/flower;",
        "auth_request_set $edge_flower_auth $upstream_status;",
        "include snippets/seclab-problem-codes.conf;",
        "error_page 401 @edge_problem_unauthenticated;",
        "error_page 403 @edge_flower_forbidden;",
        "proxy_pass https://seclab_flower/flower/;",
        'proxy_set_header Authorization "";',  # the admin's token never reaches Flower
        "proxy_ssl_verify on;",
        "proxy_ssl_name flower;",
        "proxy_ssl_trusted_certificate /etc/seclab/pki/ca/ca-bundle.crt;",
        "return 405;",
    ):
        assert line in route, line
    # The Authorization clearing comes after the shared proxy headers, which must not set it again.
    assert route.index('proxy_set_header Authorization "";') > route.index(
        "include snippets/seclab-proxy-headers.conf;")
    assert "Authorization" not in rendered["snippets/seclab-proxy-headers.conf"]
    check = directives(flower.split("location = /.seclab-auth/flower {", 1)[1].split("\n}\n", 1)[0])
    assert "internal;" in check and "proxy_pass https://seclab_app/api/v1/admin/flower-auth;" in check
    assert any(x.endswith("/snippets/seclab-proxy-app.conf;") for x in check)  # mTLS to the app
    assert "proxy_pass_request_body off;" in check
    assert "location = /api/v1/admin/flower-auth {\n    return 404;" in flower


def test_flower_route_methods_are_read_only(rendered: dict[str, str]) -> None:
    """The method filter of /flower/ as nginx will apply it (PCRE ~ Python re for this pattern)."""
    flower = rendered["snippets/seclab-flower.conf"]
    pattern = re.search(r'if \(\$edge_flower_call !~ "(.+)"\)', flower)
    assert pattern is not None
    allowed = re.compile(pattern.group(1))
    assert allowed.search("GET:/flower/") and allowed.search("HEAD:/flower/tasks")
    assert allowed.search("POST:/flower/tasks/datatable")
    for call in ("POST:/flower/api/worker/shutdown/w", "POST:/flower/api/task/revoke/x", "PUT:/flower/",
                 "DELETE:/flower/tasks", "POST:/flower/tasks/datatable/x", "POST:/flower/"):
        assert not allowed.search(call), call


def test_flower_problem_bodies(rendered: dict[str, str]) -> None:
    flower = rendered["snippets/seclab-flower.conf"]
    causes: dict[str, str] = {}
    for code, body in re.findall(r"return (\d{3}) '(.*)\\n';", flower):
        doc = json.loads(body.replace("$edge_request_id", "abc"))
        assert doc["status"] == int(code) and set(doc) >= {"type", "title", "status", "detail", "request_id"}
        causes[doc["type"].removeprefix("urn:seclab:problem:")] = body
    assert set(causes) == {"unauthenticated", "forbidden", "waf-blocked"}
    # The WAF's 403 under /flower/ is the WAF's own page, word for word.
    waf_page = (TEMPLATE_DIR.parent / "waf_rules" / "nginx" / "problem-pages.conf").read_text()
    page = re.search(r"return 403 '(.*)\\n';", waf_page)
    assert page is not None and page.group(1) == causes["waf-blocked"]


def test_flower_route_can_be_left_out(tmp_path: Path, lab: LabDefinition, pki_dir: Path) -> None:
    """edge_flower_upstream "" (the Docker engine): no route, no upstream, a config nginx accepts."""
    conf = render_edge(lab, tmp_path / "conf", pki_dir, edge_flower_upstream="")
    text = conf.read_text()
    assert "seclab_flower" not in text and "/flower/" not in text and "seclab-flower.conf" not in text
    result = nginx_test(conf)
    assert result.returncode == 0, result.stderr
