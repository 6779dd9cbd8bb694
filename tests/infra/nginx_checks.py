"""DevSec nginx-baseline controls as pure functions over a parsed configuration (`nginx -T`).

Why pure functions: the same check runs on the live host (tests/infra/test_nginx.py) and on a
configuration rendered from edge/*.j2 without a host (tests/seclab/report/test_infra_checks.py), which is how
we know each check can pass *and* fail before the edge role is on the host. Each returns the list of
problems, empty when the control holds. The DevSec expectation is quoted in each docstring; where the
lab deviates, the function checks what the lab does instead and waivers.yml says why.
"""

from __future__ import annotations

import re

from tests.infra.nginxconf import Directive, find, headers, seconds, size

# Mozilla Server Side TLS 5.7 "intermediate": the TLS 1.2 suites (OpenSSL names), DHE ones included.
MOZILLA_INTERMEDIATE_TLS12 = frozenset({
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    "DHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES256-GCM-SHA384", "DHE-RSA-CHACHA20-POLY1305",
})
ALLOWED_PROTOCOL_SETS = ({"TLSv1.2"}, {"TLSv1.3"}, {"TLSv1.2", "TLSv1.3"})
"""DevSec nginx-12: ssl_protocols in ['TLSv1.3', 'TLSv1.2', 'TLSv1.2 TLSv1.3', 'TLSv1.3 TLSv1.2']."""


def _last(conf: list[Directive], name: str) -> str | None:
    found = find(conf, name)
    return found[-1].value if found else None


def nginx_01_user(conf: list[Directive]) -> list[str]:
    """DevSec: `user` is set to a valid non-root user, and the group is not root."""
    users = find(conf, "user")
    if not users:
        return ["no `user` directive: workers run as the master's user (root)"]
    args = users[-1].args
    problems = []
    if args[0] == "root":
        problems.append("`user root`: workers run as root")
    if len(args) > 1 and args[1] == "root":
        problems.append("worker group is root")
    return problems


def nginx_05_server_tokens(conf: list[Directive]) -> list[str]:
    """DevSec: server_tokens off."""
    v = _last(conf, "server_tokens")
    return [] if v == "off" else [f"server_tokens is {v or 'unset (default on)'}"]


def nginx_06_buffers(conf: list[Directive], inputs: dict[str, str]) -> list[str]:
    """DevSec: client_body_buffer_size, client_max_body_size, client_header_buffer_size 1k and
    large_client_header_buffers '2 1k' (profile inputs; the lab's values are in waivers.yml `inputs`)."""
    problems = []
    for name in ("client_body_buffer_size", "client_max_body_size", "client_header_buffer_size"):
        want = inputs.get(name, "1k")
        got = _last(conf, name)
        if got is None or size(got) != size(want):
            problems.append(f"{name} is {got or 'unset'}, expected {want}")
    want = inputs.get("large_client_header_buffers", "2 1k")
    got = _last(conf, "large_client_header_buffers")
    if got is None or [size(x) for x in got.split()] != [size(x) for x in want.split()]:
        problems.append(f"large_client_header_buffers is {got or 'unset'}, expected {want}")
    return problems


def nginx_07_limit_conn(conf: list[Directive]) -> list[str]:
    """DevSec: limit_conn_zone $binary_remote_addr zone=default:10m; limit_conn default 5.
    Lab (waived): a zone keyed on $binary_remote_addr, applied by limit_conn in the https server."""
    zones = {}
    for d in find(conf, "limit_conn_zone"):
        m = re.search(r"zone=([^:\s]+):", d.value)
        if d.args and d.args[0] == "$binary_remote_addr" and m:
            zones[m.group(1)] = d
    if not zones:
        return ["no limit_conn_zone keyed on $binary_remote_addr"]
    applied = [d for d in find(conf, "limit_conn") if d.args and d.args[0] in zones]
    in_ssl = [d for d in applied if any("server" in c for c in d.context) or d.context == ("http",)]
    return [] if in_ssl else ["limit_conn is not applied with the per-address zone"]


def header_values(conf: list[Directive], name: str) -> list[str]:
    return headers(conf).get(name.lower(), [])


def nginx_08_frame_options(conf: list[Directive]) -> list[str]:
    """DevSec: add_header X-Frame-Options SAMEORIGIN. Lab: DENY (stricter, waived)."""
    vals = header_values(conf, "X-Frame-Options")
    if not vals:
        return ["no X-Frame-Options header"]
    return [f"X-Frame-Options {v}" for v in vals if v.upper() not in ("DENY", "SAMEORIGIN")]


def nginx_09_xss_protection(conf: list[Directive]) -> list[str]:
    """DevSec: X-XSS-Protection "1; mode=block". Lab (waived, OWASP Secure Headers): "0"."""
    vals = header_values(conf, "X-XSS-Protection")
    return [] if vals and all(v.strip() == "0" for v in vals) else [f"X-XSS-Protection is {vals or 'unset'}, expected \"0\""]


def nginx_10_nosniff(conf: list[Directive]) -> list[str]:
    """DevSec: add_header X-Content-Type-Options nosniff."""
    vals = header_values(conf, "X-Content-Type-Options")
    return [] if vals and all(v.lower() == "nosniff" for v in vals) else [f"X-Content-Type-Options is {vals or 'unset'}"]


def nginx_12_tls(conf: list[Directive]) -> list[str]:
    """DevSec: ssl_protocols TLSv1.2/TLSv1.3 only; ssl_session_tickets off (kept as is).
    Waived for Mozilla intermediate: ciphers (AEAD ECDHE/DHE only), prefer_server_ciphers off, no dhparam
    unless DHE suites are offered."""
    problems = []
    protos = _last(conf, "ssl_protocols")
    if protos is None or set(protos.split()) not in ALLOWED_PROTOCOL_SETS:
        problems.append(f"ssl_protocols is {protos or 'unset (nginx default includes TLSv1, TLSv1.1)'}")
    if _last(conf, "ssl_session_tickets") != "off":
        problems.append("ssl_session_tickets is not off")
    ciphers = _last(conf, "ssl_ciphers")
    if protos and "TLSv1.2" in protos.split():
        if ciphers is None:
            problems.append("ssl_ciphers unset (nginx default HIGH:!aNULL:!MD5 admits CBC suites)")
        else:
            extra = [c for c in ciphers.split(":") if c and c not in MOZILLA_INTERMEDIATE_TLS12]
            if extra:
                problems.append(f"ssl_ciphers outside Mozilla intermediate: {extra}")
            if any(c.startswith("DHE-") for c in ciphers.split(":")) and not find(conf, "ssl_dhparam"):
                problems.append("DHE suites without ssl_dhparam (ffdhe2048)")
    if _last(conf, "ssl_prefer_server_ciphers") not in (None, "off"):
        problems.append("ssl_prefer_server_ciphers is on (Mozilla intermediate: off)")
    return problems


def nginx_13_hsts(conf: list[Directive], minimum: int = 15768000) -> list[str]:
    """DevSec: add_header Strict-Transport-Security max-age=15768000. Lab: max-age at least that."""
    vals = header_values(conf, "Strict-Transport-Security")
    if not vals:
        return ["no Strict-Transport-Security header"]
    problems = []
    for v in vals:
        m = re.search(r"max-age=(\d+)", v)
        if not m or int(m.group(1)) < minimum:
            problems.append(f"HSTS {v!r}: max-age below {minimum}")
    return problems


def nginx_14_methods(conf: list[Directive], allowed: str) -> list[str]:
    """DevSec (http_methods_check): `if ($request_method !~ ^(GET|HEAD|POST)$)` refuses other methods.
    Lab: a `map $request_method` allowlist whose default is 0, and `return 405` when it is 0."""
    allowed_set = set(allowed.split("|"))
    ifs = [d for d in conf if d.name == "return" and d.args and d.args[0] in ("403", "405", "444")
           and any("$request_method" in c or "method" in c for c in d.context)]
    if not ifs:
        return ["no `if (...method...) { return 405; }` in the configuration"]
    problems = []
    for bad in ("TRACE", "CONNECT", "PROPFIND", "MKCOL"):
        if bad in allowed_set:
            problems.append(f"{bad} is allowed")
    mapped = [d for d in conf if any(c.split()[:2] == ["map", "$request_method"] for c in d.context)]
    if mapped:
        on = {d.name for d in mapped if d.args == ("1",)}
        default = next((d.args for d in mapped if d.name == "default"), None)
        if default != ("0",):
            problems.append("method map default is not 0")
        if on - allowed_set:
            problems.append(f"methods allowed beyond the input: {sorted(on - allowed_set)}")
    return problems


def nginx_15_csp(conf: list[Directive]) -> list[str]:
    """DevSec: Content-Security-Policy "script-src 'self'; object-src 'self'". Lab (stricter, waived):
    every CSP value restricts scripts and objects (default-src 'none', or explicit object-src 'none')
    and forbids framing. Values may come from a `map` (the edge picks one per route)."""
    vals = header_values(conf, "Content-Security-Policy")
    if not vals:
        return ["no Content-Security-Policy header"]
    policies: list[str] = []
    for v in vals:
        if v.startswith("$"):
            # `map $uri $edge_csp { default "..."; "~^/realms/" "..."; }`: every value of the map.
            policies += [d.args[0] for d in conf if len(d.args) == 1
                         and any(c.startswith("map ") and c.split()[-1] == v for c in d.context)]
        else:
            policies.append(v)
    if not policies:
        return ["CSP map without values"]
    problems = []
    for p in set(policies):
        low = p.replace(" ", "")
        no_default = "default-src'none'" not in low
        if no_default and "object-src'none'" not in low and "object-src'self'" not in low:
            problems.append(f"CSP {p!r} allows objects")
        if no_default and "default-src'self'" not in low and "script-src" not in low:
            problems.append(f"CSP {p!r} does not restrict scripts")
        if "frame-ancestors" not in low:
            problems.append(f"CSP {p!r} has no frame-ancestors")
    return problems


XSRF_COOKIE = "_xsrf"
"""Flower's (tornado's) CSRF cookie: the one cookie name allowed without HttpOnly."""


def nginx_16_cookies(conf: list[Directive]) -> list[str]:
    """DevSec (only with nginx_cookie_flag_module): cookies HttpOnly and Secure. Lab (waived): the edge
    sets no cookie itself; any proxy_cookie_flags present must include secure and httponly."""
    problems = [f"edge sets a cookie: {d.value}" for d in find(conf, "add_header") if d.args and d.args[0].lower() == "set-cookie"]
    for d in find(conf, "proxy_cookie_flags"):
        flags = {a.lower() for a in d.args[1:]}
        if d.args and d.args[0] == XSRF_COOKIE:
            # A double-submit CSRF token must be readable by the page's script (it carries no session):
            # Secure and SameSite=Strict, HttpOnly by design absent (OWASP CSRF cheat sheet).
            if not {"secure", "samesite=strict"} <= flags:
                problems.append(f"proxy_cookie_flags {d.value} lacks secure/samesite=strict")
            continue
        if not {"secure", "httponly"} <= flags:
            problems.append(f"proxy_cookie_flags {d.value} lacks secure/httponly")
    return problems


def nginx_17_timeouts(conf: list[Directive], inputs: dict[str, str]) -> list[str]:
    """DevSec: keepalive_timeout '5 5', client_body_timeout 10, client_header_timeout 10, send_timeout 10
    (profile inputs; the lab's keepalive is in waivers.yml `inputs`). Unset means nginx's 60 s default."""
    problems = []
    for name, default in (("keepalive_timeout", "5 5"), ("client_body_timeout", "10"),
                          ("client_header_timeout", "10"), ("send_timeout", "10")):
        want = inputs.get(name, default)
        got = _last(conf, name)
        if got is None or seconds(got) != seconds(want):
            problems.append(f"{name} is {got or 'unset (60s)'}, expected {want}")
    return problems
