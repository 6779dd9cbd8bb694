"""End to end: the rendered edge (127.0.0.1:18443/18480, no WAF) in front of an mTLS test backend
and a fake IdP. Flood tests come last in this file: they exhaust the per-address zones.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from .conftest import (
    BACKEND_PORT,
    EDGE_HTTP,
    EDGE_HTTPS,
    EdgeInstance,
    Upstreams,
    render_edge,
    run_dir,
    start_edge,
    stop,
)
from .fake_upstreams import APP_PROBLEM

BASE = f"https://127.0.0.1:{EDGE_HTTPS}"
HSTS = "max-age=63072000; includeSubDomains"
# Keycloak's pages: the role's documented value (no template in it), as the edge serves it.
IDP_CSP = str(yaml.safe_load((Path(__file__).resolve().parents[2] / "playbooks/roles/edge/defaults/main.yml").read_text())["edge_idp_csp"])
MOZILLA_TLS12_SUITES = {
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
}


@pytest.fixture(scope="module")
def edge(lab, pki_dir: Path, upstreams: Upstreams) -> Iterator[EdgeInstance]:
    rd = run_dir("seclab-edge-")
    conf = render_edge(lab, rd / "conf", pki_dir, edge_idp_upstream=f"unix:{upstreams.idp_socket}", edge_idp_tls=False)
    inst = start_edge(conf)
    try:
        yield inst
    finally:
        stop(inst.proc)
        shutil.rmtree(rd, ignore_errors=True)


@pytest.fixture(scope="module")
def client(edge: EdgeInstance, pki_dir: Path) -> Iterator[httpx.Client]:
    ctx = ssl.create_default_context(cafile=str(pki_dir / "ca" / "ca-bundle.crt"))
    with httpx.Client(base_url=BASE, verify=ctx, timeout=10) as c:
        yield c


def assert_security_headers(r: httpx.Response) -> None:
    h = r.headers
    assert h.get_list("strict-transport-security") == [HSTS]
    csp = h.get_list("content-security-policy")
    if r.request.url.path.startswith("/realms/"):  # Keycloak's login pages: the CSP that fits its theme
        assert csp == [IDP_CSP]
        assert "frame-ancestors 'none'" in IDP_CSP and "object-src 'none'" in IDP_CSP and "'unsafe-eval'" not in IDP_CSP
    else:
        assert csp == ["default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"]
    assert h["x-content-type-options"] == "nosniff"
    assert h["referrer-policy"] == "no-referrer"
    assert "camera=()" in h["permissions-policy"] and "geolocation=()" in h["permissions-policy"]
    assert h["cross-origin-resource-policy"] == "same-origin"
    assert h.get_list("x-frame-options") == ["DENY"]
    assert h.get_list("cache-control") == ["no-store"]
    assert h["server"] == "nginx"  # no version (server_tokens off)
    assert re.fullmatch(r"[A-Za-z0-9._:-]{8,128}", h["x-request-id"])


def assert_problem(r: httpx.Response, status: int, cause: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["type"] == f"urn:seclab:problem:{cause}"
    assert body["status"] == status
    assert body["request_id"] == r.headers["x-request-id"]
    assert_security_headers(r)
    return body


def test_http_port_redirects_308_to_canonical_https(edge: EdgeInstance) -> None:
    r = httpx.get(f"http://127.0.0.1:{EDGE_HTTP}/api/v1/echo?x=1", headers={"Host": "evil.example"})
    assert r.status_code == 308
    assert r.headers["location"] == f"https://localhost:{EDGE_HTTPS}/api/v1/echo?x=1"
    assert "strict-transport-security" not in r.headers  # HSTS over plain HTTP is ignored (RFC 6797 7.2)


def test_api_through_edge_over_mtls(client: httpx.Client) -> None:
    r = client.get("/api/v1/echo", headers={"X-Forwarded-For": "6.6.6.6"})
    assert r.status_code == 200
    assert_security_headers(r)
    seen = r.json()
    assert seen["path"] == "/api/v1/echo"
    assert seen["x_request_id"] == r.headers["x-request-id"]  # the app sees the id the client gets
    assert seen["x_forwarded_for"] == "127.0.0.1"  # the client's XFF is replaced, not appended
    assert seen["x_forwarded_proto"] == "https"


def test_health_routes_proxied(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def test_safe_client_request_id_kept_unsafe_replaced(client: httpx.Client) -> None:
    r = client.get("/api/v1/echo", headers={"X-Request-ID": "client-id-0001"})
    assert r.headers["x-request-id"] == "client-id-0001" == r.json()["x_request_id"]
    bad = 'x"}\n{"forged":1'
    r = client.get("/api/v1/echo", headers={"X-Request-ID": bad.replace("\n", " ")})
    assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])
    assert r.json()["x_request_id"] == r.headers["x-request-id"]


def test_upstream_security_headers_replaced_by_the_edge(client: httpx.Client) -> None:
    r = client.get("/api/v1/conversations")
    assert r.status_code == 200
    assert_security_headers(r)  # one Cache-Control no-store, one X-Frame-Options DENY
    assert "x-powered-by" not in r.headers


@pytest.mark.parametrize("path", ["/nope", "/", "/metrics", "/metrics/", "/api", "/realmsx"])
def test_unknown_paths_and_metrics_are_404_problems(client: httpx.Client, path: str) -> None:
    assert_problem(client.get(path), 404, "not-found")


def _raw_get(raw_target: str, pki_dir: Path) -> tuple[http.client.HTTPResponse, bytes]:
    """GET a request target byte for byte (httpx would normalise dot segments and escapes)."""
    ctx = ssl.create_default_context(cafile=str(pki_dir / "ca" / "ca-bundle.crt"))
    conn = http.client.HTTPSConnection("localhost", EDGE_HTTPS, context=ctx, timeout=10)
    try:
        conn.request("GET", raw_target)
        resp = conn.getresponse()
        return resp, resp.read()
    finally:
        conn.close()


def test_metrics_not_reachable_by_dot_segments(edge: EdgeInstance, pki_dir: Path) -> None:
    for raw in ("/api/v1/%2e%2e/%2e%2e/metrics", "/api/v1/../../metrics", "/healthz/../metrics"):
        resp, body = _raw_get(raw, pki_dir)
        assert resp.status == 404, raw
        assert json.loads(body)["type"] == "urn:seclab:problem:not-found", raw
        assert b"secret_metric" not in body


def test_paths_climbing_above_the_root_are_400_problems(edge: EdgeInstance, pki_dir: Path) -> None:
    """nginx rejects these while parsing the request line; the refusal must still be problem+json."""
    for raw in ("/api/..%2f..%2f..%2fetc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/../../etc/passwd"):
        resp, body = _raw_get(raw, pki_dir)
        assert resp.status in (400, 404), (raw, resp.status, body[:200])
        assert resp.getheader("content-type", "").startswith("application/problem+json"), raw
        assert json.loads(body)["type"] in ("urn:seclab:problem:validation", "urn:seclab:problem:not-found")


def test_unknown_host_is_404_problem(client: httpx.Client) -> None:
    assert_problem(client.get("/api/v1/echo", headers={"Host": "evil.example"}), 404, "not-found")


def test_trace_is_405_problem(client: httpx.Client) -> None:
    assert_problem(client.request("TRACE", "/api/v1/echo"), 405, "method-not-allowed")


def test_oversized_body_is_413_problem(client: httpx.Client, lab) -> None:
    limit = lab.limits.body_max_bytes
    ok = client.post("/api/v1/conversations/c1/messages", content=b"a" * limit)
    assert ok.status_code == 201 and ok.json()["bytes"] == limit
    r = client.post("/api/v1/conversations/c1/messages", content=b"a" * (limit + 1))
    assert_problem(r, 413, "payload-too-large")


def test_oversized_header_is_400_validation_problem(client: httpx.Client) -> None:
    r = client.get("/api/v1/echo", headers={"X-Big": "a" * 9000})
    assert_problem(r, 400, "validation")


def test_app_problems_pass_through_unchanged(client: httpx.Client) -> None:
    r = client.get("/api/v1/conversations/does-not-exist")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json() == APP_PROBLEM  # the app's own body, not the edge's not-found page
    assert_security_headers(r)
    r = client.get("/api/v1/forbidden")
    assert r.status_code == 403 and r.json()["detail"] == "from-the-app"
    r = client.get("/api/v1/busy")
    assert r.status_code == 429 and r.json()["type"] == "urn:seclab:problem:budget-exhausted"
    assert r.headers.get_list("retry-after") == ["42"]  # the app's own Retry-After, alone


def test_idp_routes_proxied_with_forwarded_headers(client: httpx.Client) -> None:
    r = client.get("/realms/seclab/.well-known/openid-configuration", headers={"Host": "localhost"})
    assert r.status_code == 200
    body = r.json()
    assert body["x_forwarded_proto"] == "https"
    assert body["issuer"] == "https://localhost/realms/seclab"
    assert r.headers["strict-transport-security"] == HSTS
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert (
        client.post(
            "/realms/seclab/protocol/openid-connect/token", data={"grant_type": "password"}
        ).status_code
        == 200
    )


def test_access_log_is_json_with_request_id(client: httpx.Client, edge: EdgeInstance) -> None:
    rid = "log-check-0000001"
    client.get("/api/v1/echo", headers={"X-Request-ID": rid})
    client.get("/nope")
    lines = [json.loads(x) for x in edge.access_log.read_text().splitlines() if x.strip()]
    mine = [x for x in lines if x["http"]["request"]["id"] == rid]
    assert len(mine) == 1
    entry = mine[0]
    assert entry["http"]["response"]["status_code"] == "200"
    assert entry["upstream"]["status"] == "200"
    assert entry["url"]["path"] == "/api/v1/echo"
    assert float(entry["event"]["duration"]) >= 0
    assert entry["tls"]["version"] in ("TLSv1.2", "TLSv1.3")


# --- TLS -------------------------------------------------------------------------------------------


def _handshake(ctx: ssl.SSLContext, port: int = EDGE_HTTPS, server_name: str = "localhost") -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    # suppress_ragged_eofs=False: a TCP close without close_notify is an error, not an empty read.
    return ctx.wrap_socket(raw, server_hostname=server_name, suppress_ragged_eofs=False)


def _client_ctx(pki_dir: Path, version: ssl.TLSVersion) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki_dir / "ca" / "ca-bundle.crt"))
    ctx.minimum_version = version
    ctx.maximum_version = version
    return ctx


def test_tls11_refused_by_the_server(edge: EdgeInstance, pki_dir: Path) -> None:
    ctx = _client_ctx(pki_dir, ssl.TLSVersion.TLSv1_1)
    # Let OUR side offer TLS 1.1 (OpenSSL 3 disables it at security level >0), so that the
    # refusal we observe is the server's protocol_version alert, not a client-side no-op.
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with pytest.raises(ssl.SSLError) as err:
        _handshake(ctx).close()
    assert "alert protocol version" in str(err.value).lower() or "tlsv1 alert" in str(err.value).lower()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls12_and_13_accepted_with_mozilla_suites(edge: EdgeInstance, pki_dir: Path, version) -> None:
    s = _handshake(_client_ctx(pki_dir, version))
    try:
        cipher = s.cipher()
        assert cipher is not None
        name, proto, _ = cipher
        assert proto == version.name.replace("v1_", "v1.")
        if version == ssl.TLSVersion.TLSv1_2:
            assert name in MOZILLA_TLS12_SUITES
    finally:
        s.close()


def test_tls12_cbc_suite_refused(edge: EdgeInstance, pki_dir: Path) -> None:
    ctx = _client_ctx(pki_dir, ssl.TLSVersion.TLSv1_2)
    ctx.set_ciphers("ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA")
    with pytest.raises(ssl.SSLError):
        _handshake(ctx).close()


# --- mTLS to the app -------------------------------------------------------------------------------


def _direct(ctx: ssl.SSLContext) -> bytes:
    s = _handshake(ctx, BACKEND_PORT, "app")
    try:
        s.sendall(b"GET /api/v1/echo HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        return data
    finally:
        s.close()


def _refused(ctx: ssl.SSLContext) -> str:
    """How the backend refused: an SSL error, a reset, or a close before any HTTP byte."""
    try:
        data = _direct(ctx)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    assert data == b"", f"the backend answered without a valid client certificate: {data[:80]!r}"
    return "closed before any response"


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_backend_refuses_a_client_without_certificate(upstreams: Upstreams, pki_dir: Path, version) -> None:
    ctx = ssl.create_default_context(cafile=str(pki_dir / "ca" / "ca-bundle.crt"))
    ctx.maximum_version = version
    how = _refused(ctx)
    if version == ssl.TLSVersion.TLSv1_2:  # TLS 1.2: the client certificate is part of the handshake
        assert how.startswith("SSL"), how


def test_backend_refuses_a_certificate_from_another_ca(
    upstreams: Upstreams, pki_dir: Path, tmp_path: Path
) -> None:
    from labdef import load
    from pki import build_plan, ensure

    other = tmp_path / "other-pki"
    ensure(build_plan(load()), other, private_group=None)  # a second, unrelated lab CA
    ctx = ssl.create_default_context(cafile=str(pki_dir / "ca" / "ca-bundle.crt"))
    ctx.load_cert_chain(other / "certs" / "edge-client.chain.crt", other / "private" / "edge-client.key")
    _refused(ctx)


def test_backend_accepts_the_edge_client_certificate(upstreams: Upstreams, pki_dir: Path) -> None:
    ctx = ssl.create_default_context(cafile=str(pki_dir / "ca" / "ca-bundle.crt"))
    ctx.load_cert_chain(pki_dir / "certs" / "edge-client.chain.crt", pki_dir / "private" / "edge-client.key")
    data = _direct(ctx)
    assert data.startswith(b"HTTP/1.1 200")


# --- Floods last: they exhaust the per-address zones -----------------------------------------------


def test_token_route_flood_is_429_problem_with_retry_after(client: httpx.Client) -> None:
    statuses = []
    for _ in range(60):  # bounded: 30 r/m with burst 10 must refuse well before 60
        r = client.post("/realms/seclab/protocol/openid-connect/token", data={"grant_type": "password"})
        statuses.append(r.status_code)
        if r.status_code == 429:
            break
    assert statuses[-1] == 429, statuses
    assert statuses.count(200) >= 5  # the burst passed first
    assert_problem(r, 429, "rate-limited")
    assert r.headers.get_list("retry-after") == ["5"]


def test_message_route_flood_is_429_problem_with_retry_after(client: httpx.Client) -> None:
    statuses = []
    for _ in range(200):  # bounded: 120 r/m with burst 20 must refuse well before 200
        r = client.post("/api/v1/conversations/c1/messages", json={"content": "hi"})
        statuses.append(r.status_code)
        if r.status_code == 429:
            break
    assert statuses[-1] == 429, statuses
    assert statuses.count(201) >= 10
    assert_problem(r, 429, "rate-limited")
    assert r.headers.get_list("retry-after") == ["5"]
    # Other routes of the same address are not limited by the message zone.
    assert client.get("/api/v1/echo").status_code == 200
