"""The edge with `modsecurity on`, rendered with the WAF helper's renderer (waf_rules/render.py).

The WAF itself is tested in tests/waf_rules; here only the wiring: a SQL injection in a query string is a
403 urn:seclab:problem:waf-blocked, a clean request still reaches the app over mTLS.
"""

from __future__ import annotations

import re
import shutil
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import need
from waf_rules import render as waf_render

from .conftest import (
    EDGE_HTTPS,
    EdgeInstance,
    Upstreams,
    give_to_workers,
    render_edge,
    run_dir,
    start_edge,
    stop,
)


@pytest.fixture(scope="module", autouse=True)
def _modsecurity_installed() -> None:
    need(Path(waf_render.MODSEC_MODULE).exists(), "libnginx-mod-http-modsecurity")


@pytest.fixture(scope="module")
def waf_edge(lab, pki_dir: Path, upstreams: Upstreams) -> Iterator[EdgeInstance]:
    rd = run_dir("seclab-edge-waf-")
    waf_dir = rd / "waf"
    audit = rd / "modsec_audit.json"
    audit.touch()
    give_to_workers(audit)
    waf_render.render(lab, waf_dir, audit, tmp_dir=str(rd / "conf" / "tmp"))
    conf = render_edge(
        lab,
        rd / "conf",
        pki_dir,
        edge_waf_enabled=True,
        edge_waf_conf_dir=str(waf_dir),
        edge_modules=[waf_render.MODSEC_MODULE],
        edge_error_log_level="info",
        edge_idp_upstream=f"unix:{upstreams.idp_socket}",
    )
    inst = start_edge(conf)
    try:
        yield inst
    finally:
        stop(inst.proc)
        shutil.rmtree(rd, ignore_errors=True)


@pytest.fixture(scope="module")
def client(waf_edge: EdgeInstance, pki_dir: Path) -> Iterator[httpx.Client]:
    ctx = ssl.create_default_context(cafile=str(pki_dir / "ca" / "ca-bundle.crt"))
    with httpx.Client(base_url=f"https://127.0.0.1:{EDGE_HTTPS}", verify=ctx, timeout=20) as c:
        yield c


def test_clean_request_passes_the_waf(client: httpx.Client) -> None:
    r = client.get("/api/v1/echo", params={"q": "hello"})
    assert r.status_code == 200
    assert r.json()["path"] == "/api/v1/echo"


def test_sqli_in_query_is_waf_blocked_problem(client: httpx.Client, waf_edge: EdgeInstance) -> None:
    r = client.get("/api/v1/echo", params={"id": "1' OR '1'='1' UNION SELECT password FROM users--"})
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["type"] == "urn:seclab:problem:waf-blocked"
    assert body["request_id"] == r.headers["x-request-id"]
    assert not re.search(r"\b9[0-9]{5}\b", r.text)  # no CRS rule ids (internals) in the body
    # The request id of the block is the one in nginx's log lines of the matched rules.
    assert body["request_id"] in waf_edge.error_log.read_text(errors="replace")


def test_app_own_403_is_not_rewritten_as_waf_block(client: httpx.Client) -> None:
    r = client.get("/api/v1/forbidden")
    assert r.status_code == 403
    assert r.json()["type"] == "urn:seclab:problem:forbidden"


def test_waf_block_carries_the_security_headers(client: httpx.Client) -> None:
    r = client.get("/api/v1/echo", params={"id": "1' OR '1'='1' UNION SELECT password FROM users--"})
    assert r.status_code == 403
    assert r.headers.get("strict-transport-security") == "max-age=63072000; includeSubDomains"
    assert r.headers.get("content-security-policy", "").startswith("default-src 'none'")


def test_client_request_id_is_the_waf_transaction_id(client: httpx.Client, waf_edge: EdgeInstance) -> None:
    """A boring client X-Request-ID is the id of the block everywhere: body, header, access and error log."""
    rid = "client-corr-0001"
    r = client.get("/api/v1/echo", params={"id": "1' OR '1'='1' UNION SELECT password FROM users--"},
                   headers={"X-Request-ID": rid})
    assert r.status_code == 403
    assert r.json()["request_id"] == rid == r.headers["x-request-id"]
    assert f'[unique_id "{rid}"]' in waf_edge.error_log.read_text(errors="replace")
    assert f'"id":"{rid}"' in waf_edge.access_log.read_text(errors="replace")
