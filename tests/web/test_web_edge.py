"""The chat page as the edge serves it on the live lab (https://localhost/): the static export, its
strict CSP (every inline script of the SERVED page hashed, nothing 'unsafe-*'), the edge's other
security headers, and the WAF letting the page through."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import ssl
import uuid
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.conftest import need
from tests.web.conftest import lab

pytestmark = pytest.mark.integration

SCRIPT = re.compile(r"<script\b([^>]*)>([\s\S]*?)</script\s*>", re.IGNORECASE)
SECURITY_HEADERS = {
    "strict-transport-security": "max-age=63072000; includeSubDomains",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}


@pytest.fixture(scope="module")
def edge() -> httpx.Client:
    the_lab = lab()
    ca = Path(the_lab.paths.pki) / "ca" / "ca-bundle.crt"
    need(ca.is_file(), f"the lab CA {ca} (./lab up)")
    client = httpx.Client(base_url="https://localhost", verify=ssl.create_default_context(cafile=str(ca)), timeout=15)
    try:
        client.get("/healthz")
    except httpx.TransportError:
        need(False, "the edge on https://localhost (./lab up)")
    return client


def directives(csp: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


def inline_script_hashes(html: str) -> set[str]:
    found = set()
    for attrs, body in SCRIPT.findall(html):
        if "src=" in attrs or "application/json" in attrs:
            continue
        found.add("'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'")
    return found


@pytest.mark.parametrize("path", ["/", "/callback"])
def test_the_page_is_served_with_a_strict_csp_covering_its_inline_scripts(edge: httpx.Client, path: str) -> None:
    res = edge.get(path)
    assert res.status_code == 200, res.text[:300]
    assert res.headers["content-type"].startswith("text/html")
    assert "seclab chat" in res.text
    csp = directives(res.headers["content-security-policy"])
    scripts = csp["script-src"]
    assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts and "*" not in scripts
    assert all(s == "'self'" or s.startswith("'sha256-") for s in scripts), scripts
    inline = inline_script_hashes(res.text)
    assert inline, "a Next.js export inlines its bootstrap scripts: none found, wrong page?"
    assert inline <= set(scripts), f"inline scripts not allowed by the CSP: {inline - set(scripts)}"
    assert csp["object-src"] == ["'none'"] and csp["base-uri"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"] and csp["connect-src"] == ["'self'"]
    assert "'unsafe-inline'" not in csp.get("style-src", [])
    for name, value in SECURITY_HEADERS.items():
        assert res.headers.get(name) == value, name
    assert "camera=()" in res.headers["permissions-policy"]
    assert res.headers["x-request-id"]


def test_build_assets_are_served_with_their_types_and_the_page_csp(edge: httpx.Client) -> None:
    html = edge.get("/").text
    assets = sorted(set(re.findall(r'(?:src|href)="(/_next/static/[^"]+\.(?:js|css))"', html)))
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets), assets
    for asset in assets:
        res = edge.get(asset)
        assert res.status_code == 200, asset
        want = "javascript" if asset.endswith(".js") else "text/css"
        assert want in res.headers["content-type"], (asset, res.headers["content-type"])
        assert "script-src 'self'" in res.headers["content-security-policy"]


@pytest.mark.parametrize("path", ["/.seclab-csp.json", "/.seclab-source-sha1", "/_next/", "/index", "/nope"])
def test_nothing_else_of_the_export_directory_is_reachable(edge: httpx.Client, path: str) -> None:
    res = edge.get(path)
    assert res.status_code == 404
    assert res.headers["content-type"].startswith("application/problem+json")
    assert res.json()["type"] == "urn:seclab:problem:not-found"


def test_the_api_keeps_its_own_locked_down_csp(edge: httpx.Client) -> None:
    res = edge.get("/api/v1/conversations")
    assert res.status_code == 401
    assert res.headers["content-security-policy"].startswith("default-src 'none'; frame-ancestors 'none'")


def test_keycloak_login_page_gets_the_csp_that_fits_its_theme(edge: httpx.Client) -> None:
    """/realms/ carries the edge role's edge_idp_csp (why: Keycloak's per-session inline scripts), never
    the page's or the API's, and the login form the browser gets really has such inline scripts."""
    import yaml

    from tests.web.conftest import ROOT

    expected = yaml.safe_load((ROOT / "playbooks/roles/edge/defaults/main.yml").read_text())["edge_idp_csp"]
    realm = lab().identity.realm
    res = edge.get(f"/realms/{realm}/protocol/openid-connect/auth", params={
        "client_id": "seclab-web", "response_type": "code", "scope": "openid",
        "redirect_uri": "https://localhost/callback", "code_challenge_method": "S256",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"})
    assert res.status_code == 200 and 'id="kc-form-login"' in res.text, res.status_code
    assert res.headers.get_list("content-security-policy") == [expected]
    csp = directives(expected)
    assert csp["frame-ancestors"] == ["'none'"] and csp["object-src"] == ["'none'"] and "'unsafe-eval'" not in expected
    assert inline_script_hashes(res.text), "Keycloak's login page has no inline script: drop 'unsafe-inline'"
    page = directives(edge.get("/").headers["content-security-policy"])
    assert "'unsafe-inline'" not in page["script-src"]


def test_only_build_assets_are_compressed(edge: httpx.Client) -> None:
    """gzip for the secret-free build assets only; HTML and API answers stay uncompressed (BREACH)."""
    html = edge.get("/", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in html.headers
    js = re.findall(r'src="(/_next/static/[^"]+\.js)"', html.text)[0]
    res = edge.get(js, headers={"Accept-Encoding": "gzip"})
    assert res.headers.get("content-encoding") == "gzip"


def _bearer(user: str) -> dict[str, str]:
    from labdef.tokens import get_access_token

    return {"Authorization": f"Bearer {get_access_token(lab(), user)}"}


def test_lab_admin_sees_the_edge_refusals_and_the_merged_audit_log(edge: httpx.Client) -> None:
    need(os.geteuid() == 0, "root (the lab users' passwords are root-only)")
    rid = f"webtest-{uuid.uuid4().hex}"
    assert edge.get(f"/no-such-page-{rid}", headers={"X-Request-ID": rid}).status_code == 404
    admin = _bearer("admin")
    refusals = edge.get("/api/v1/admin/edge-refusals", headers=admin, params={"limit": 50})
    assert refusals.status_code == 200, refusals.text
    mine = [r for r in refusals.json()["items"] if r["request_id"] == rid]
    assert mine and mine[0]["status"] == 404 and mine[0]["cause"] == "not-found"

    alice, bob = _bearer("alice"), _bearer("bob")
    for who in (alice, bob, alice):  # three entries in two tenants, newest last
        assert edge.post("/api/v1/conversations", headers=who, json={"title": f"audit {rid}"}).status_code == 201
    first = edge.get("/api/v1/admin/audit", headers=admin, params={"limit": 2})
    assert first.status_code == 200, first.text
    page1 = first.json()
    assert len(page1["items"]) == 2 and page1["next_cursor"]
    assert [(e["scope"], e["action"]) for e in page1["items"]] == [("acme", "conversation.create"), ("globex", "conversation.create")]
    page2 = edge.get("/api/v1/admin/audit", headers=admin, params={"limit": 2, "cursor": page1["next_cursor"]}).json()
    stamps = [(datetime.fromisoformat(e["ts"]), e["id"]) for e in page1["items"] + page2["items"]]
    assert stamps == sorted(stamps, reverse=True) and len(set(stamps)) == len(stamps)

    for path in ("/api/v1/admin/audit", "/api/v1/admin/edge-refusals"):
        assert edge.get(path, headers=alice).status_code == 403
