"""The tuning is narrow: chat prompts pass, CRS keeps its coverage, attacks in every other input are blocked.

Starts local nginx + ModSecurity instances (stock CRS and the lab's config) on 127.0.0.1:18080-18099.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.waf.common import FAKE_BEARER
from benchmarks.waf.crs_regression import load_stages, run_stages, send_raw
from benchmarks.waf.falsepositives import load_prompts, send_prompts

MAX_LEGIT_BLOCK_RATE = 0.01  # the target: at most 1% of chat-legit blocked at PL1 and PL2
MSG = "/api/v1/conversations/c0ffee-42/messages"
SQLI = "SELECT name FROM users WHERE id = '1' OR '1'='1' UNION SELECT password FROM admins --"
AUTH = {"Authorization": f"Bearer {FAKE_BEARER}"}


def _raw(method: str, target: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    head = {"Host": "localhost", "User-Agent": "seclab-tests", "Accept": "*/*", **headers}
    if body:
        head["Content-Length"] = str(len(body))
    return (f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in head.items())
            + "Connection: close\r\n\r\n").encode() + body


def _json(payload: Any) -> bytes:
    return json.dumps(payload).encode()


JSON = {"Content-Type": "application/json", **AUTH}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}

# Keycloak's login form POST as a browser sends it, with Keycloak's own cookies. Their values are
# base64url JWTs, where '--' followed later by '-' is ordinary and matches CRS 942440 (SQL comment).
KC_LOGIN = "/realms/seclab/login-actions/authenticate?session_code=Zx9-QeR&execution=5d1c-4f&client_id=seclab-web&tab_id=T-1"
KC_RESTART = ("eyJhbGciOiJkaXIiLCJlbmMiOiJBMTI4Q0JDLUhTMjU2In0..Qx--7cUe0_Lm2Kp-fRs8Hw.pPq3--Zr8_kTnQ0-"
              "mN4vX0x1f3e5a7bb9c_1aB--cD-eF.Ua0--b-1")
KC_COOKIES = (f"AUTH_SESSION_ID=3f2b7c1e-8a4d-4e0f-9b6a-2c5d8e7f1a0b.kc-node--1-2; KC_RESTART={KC_RESTART}; "
              "KC_AUTH_SESSION_HASH=Qm--x9-Z_0xdeadbeef")

# Apache httpd's wake-up requests to its own children end their User-Agent like this (CRS 905110 matches it).
APACHE_DUMMY_UA = "Apache/2.4.57 (Debian) OpenSSL/3.0.11 (internal dummy connection)"
# 905110 needs exactly `GET / HTTP/1.x` (or `OPTIONS *`), so the attack rides in a cookie.
APACHE_DUMMY_RCE = _raw("GET", "/", {"User-Agent": APACHE_DUMMY_UA, "Cookie": "session=x;cat /etc/passwd"})
# Each case: (name, raw request). All must be refused (403) by the tuned config at PL1 and PL2.
ATTACKS: list[tuple[str, bytes]] = [
    ("sqli-in-query-on-message-route",
     _raw("POST", MSG + "?sort=1%27%20OR%20%271%27%3D%271%27%20--", JSON, _json({"content": "hello"}))),
    ("xss-in-other-json-field", _raw("POST", MSG, JSON, _json({"content": "hi", "title": "<script>alert(1)</script>"}))),
    ("sqli-in-other-json-field", _raw("POST", MSG, JSON, _json({"content": "hi", "model": SQLI}))),
    ("shellshock-in-header", _raw("GET", "/api/v1/conversations", {**AUTH, "User-Agent": "() { :; }; /bin/cat /etc/passwd"})),
    # Scripted clients are normal on the API (913101 removed there), security scanners are not (913100).
    ("scanner-user-agent-on-api", _raw("GET", "/api/v1/conversations", {**AUTH, "User-Agent": "sqlmap/1.7.2#stable"})),
    ("rce-in-cookie", _raw("GET", "/api/v1/conversations", {**AUTH, "Cookie": "session=x;cat /etc/passwd"})),
    # CRS 905110 (left out, crs-selection.conf.j2) switches the engine off for this User-Agent from loopback.
    ("rce-in-cookie-with-apache-dummy-connection-ua-from-loopback", APACHE_DUMMY_RCE),
    ("path-traversal-in-url", _raw("GET", "/api/v1/conversations/..%2f..%2f..%2fetc%2fpasswd", AUTH)),
    ("path-traversal-raw-dots", _raw("GET", "/api/v1/conversations/x/../../../etc/passwd", AUTH)),
    ("path-traversal-in-query", _raw("GET", "/api/v1/conversations?export=../../../../etc/shadow", AUTH)),
    ("sqli-in-token-form", _raw("POST", "/realms/seclab/protocol/openid-connect/token", FORM,
                                b"grant_type=password&client_id=seclab-cli&username=admin%27%20OR%201%3D1--&password=x")),
    # The exemption must not leak to other routes or shapes of the message request:
    ("message-content-on-other-route", _raw("POST", "/api/v1/conversations", JSON, _json({"content": SQLI}))),
    ("message-route-traversal-variant", _raw("POST", "/api/v1/conversations/..%2f/messages", JSON, _json({"content": SQLI}))),
    ("message-route-not-json", _raw("POST", MSG, {**AUTH, "Content-Type": "text/plain"}, _json({"content": SQLI}))),
    ("message-route-form-body", _raw("POST", MSG, {**AUTH, **FORM}, b"json.content=" + SQLI.replace(" ", "+").encode())),
    ("query-arg-named-like-content", _raw("POST", MSG + "?json.content=%3Cscript%3Ealert(1)%3C%2Fscript%3E", JSON,
                                          _json({"content": "hello"}))),
    # The message field's structure, encoding and size are still checked:
    ("content-with-nul", _raw("POST", MSG, JSON, b'{"content": "hello\\u0000world"}')),
    ("content-with-escape-byte", _raw("POST", MSG, JSON, b'{"content": "hello\\u001b[2Jworld"}')),
    ("content-not-utf8", _raw("POST", MSG, JSON, b'{"content": "caf\xe9 \xff\xfe"}')),
    ("content-as-object", _raw("POST", MSG, JSON, _json({"content": {"x": "<script>alert(1)</script>"}}))),
    ("content-repeated", _raw("POST", MSG, JSON, b'{"content": "hello", "content": "again"}')),
    ("content-oversized", _raw("POST", MSG, JSON, _json({"content": "a" * 64_050}))),
    ("invalid-json", _raw("POST", MSG, JSON, b'{"content": "unterminated')),
    # Keycloak's cookies are excluded on its login routes only; the login form itself keeps full CRS:
    ("sqli-in-login-form-with-keycloak-cookies", _raw("POST", KC_LOGIN, {**FORM, "Cookie": KC_COOKIES},
                                                      b"username=admin%27%20OR%201%3D1--&password=x&credentialId=")),
    ("xss-in-login-form-with-keycloak-cookies", _raw("POST", KC_LOGIN, {**FORM, "Cookie": KC_COOKIES},
                                                     b"username=%3Cscript%3Ealert(1)%3C%2Fscript%3E&password=x")),
    ("sqli-in-login-query", _raw("POST", KC_LOGIN + "&client_id=x%27%20OR%201%3D1--", {**FORM, "Cookie": KC_COOKIES},
                                 b"username=alice&password=x")),
]

# Keycloak's cookie values where the exclusion does NOT apply: refused like stock CRS refuses them. 942440
# (SQL comment) is a PL2 rule in CRS 3.3, so stock passes these at PL1 too: checked at PL2 (the lab's level).
KC_COOKIES_ELSEWHERE: list[tuple[str, bytes]] = [
    ("keycloak-cookie-sqli-on-api-route", _raw("GET", "/api/v1/conversations", {**AUTH, "Cookie": KC_COOKIES})),
    ("keycloak-cookie-sqli-on-account-console", _raw("GET", "/realms/seclab/account/", {"Cookie": KC_COOKIES})),
    ("other-cookie-on-login-route", _raw("POST", KC_LOGIN, {**FORM, "Cookie": "KC_RESTARTX=" + KC_RESTART},
                                         b"username=alice&password=x")),
]


@pytest.mark.parametrize("level", [1, 2])
def test_legit_prompts_pass_the_tuned_waf(waf: Any, chat_legit: Path, level: int) -> None:
    prompts = load_prompts(chat_legit)
    inst = waf(False, level)
    statuses = asyncio.run(send_prompts(inst.base_url, prompts, concurrency=4))
    assert 0 not in statuses, "transport errors: the instance did not answer every request"
    measured = [s for s in statuses if s != 413]  # oversized bodies are refused by size, by design
    blocked = sum(1 for s in measured if s == 403)
    rate = blocked / len(measured)
    assert rate <= MAX_LEGIT_BLOCK_RATE, f"PL{level}: {blocked}/{len(measured)} legit prompts blocked ({rate:.2%})"
    assert all(s in (200, 403, 413) for s in statuses)


@pytest.mark.parametrize("level", [1, 2])
def test_lab_blocks_at_least_the_crs_regression_stock_blocks(waf: Any, crs_regression: Path, level: int) -> None:
    stages, _ = load_stages(crs_regression)
    assert len(stages) > 1000, "the regression corpus looks incomplete"
    stock = asyncio.run(run_stages(waf(True, level).base_url, stages, 8, None))
    lab = asyncio.run(run_stages(waf(False, level).base_url, stages, 8, None))
    stock_blocked, lab_blocked = stock.count(403), lab.count(403)
    assert stock_blocked > len(stages) // 2, "stock CRS blocked too little: is the WAF really on?"
    assert lab_blocked >= stock_blocked, f"PL{level}: lab blocks {lab_blocked}, stock CRS {stock_blocked}"


@pytest.mark.parametrize("level", [1, 2])
@pytest.mark.parametrize("name,request_bytes", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_attacks_outside_the_message_text_are_blocked(waf: Any, level: int, name: str, request_bytes: bytes) -> None:
    status = asyncio.run(send_raw(waf(False, level).base_url, request_bytes, None))
    assert status == 403, f"{name} at PL{level}: got {status}"


def test_the_apache_loopback_exception_is_a_real_bypass_that_the_lab_leaves_out(waf: Any) -> None:
    """Stock CRS (with REQUEST-905) lets an attack through from loopback with Apache's dummy-connection
    User-Agent (ctl:ruleEngine=Off); the lab, without 905, refuses it. The test instances listen on
    127.0.0.1, so the client is on loopback exactly as 905110 requires."""
    stock, lab = (asyncio.run(send_raw(waf(st, 1).base_url, APACHE_DUMMY_RCE, None)) for st in (True, False))
    assert (stock, lab) == (200, 403)


@pytest.mark.parametrize("level", [1, 2])
def test_the_exemption_is_real_sqli_text_passes_only_as_message_content(waf: Any, level: int) -> None:
    """The same text is blocked by stock CRS and passes the lab only in the message field."""
    body = _json({"content": f"Why is this query slow? {SQLI}"})
    ok = asyncio.run(send_raw(waf(False, level).base_url, _raw("POST", MSG, JSON, body), None))
    stock = asyncio.run(send_raw(waf(True, level).base_url, _raw("POST", MSG, JSON, body), None))
    assert (ok, stock) == (200, 403)


@pytest.mark.parametrize("name,request_bytes", KC_COOKIES_ELSEWHERE, ids=[a[0] for a in KC_COOKIES_ELSEWHERE])
def test_keycloak_cookies_keep_full_crs_outside_keycloak_login_routes(waf: Any, name: str, request_bytes: bytes) -> None:
    statuses = [asyncio.run(send_raw(waf(stock, 2).base_url, request_bytes, None)) for stock in (False, True)]
    assert statuses == [403, 403], f"{name} at PL2 (tuned, stock): {statuses}"


@pytest.mark.parametrize("level", [1, 2])
def test_keycloak_login_post_with_its_cookies_passes_only_on_keycloak_routes(waf: Any, level: int) -> None:
    """The login form's POST that stock CRS refuses at PL2 for Keycloak's cookie values (942440 is PL2)
    passes the lab's WAF at every level."""
    login = _raw("POST", KC_LOGIN, {**FORM, "Cookie": KC_COOKIES}, b"username=alice&password=Tr0ub4dor%263&credentialId=")
    ok = asyncio.run(send_raw(waf(False, level).base_url, login, None))
    stock = asyncio.run(send_raw(waf(True, level).base_url, login, None))
    assert (ok, stock) == (200, 403 if level >= 2 else 200)
    # ... and it is the cookies stock refuses: the same POST without them passes stock.
    bare = _raw("POST", KC_LOGIN, FORM, b"username=alice&password=Tr0ub4dor%263&credentialId=")
    assert asyncio.run(send_raw(waf(True, level).base_url, bare, None)) == 200
    # The same cookies on the endpoints the page reaches with them: the auth redirect and silent renewal.
    auth = _raw("GET", "/realms/seclab/protocol/openid-connect/auth?client_id=seclab-web&response_type=code"
                "&code_challenge_method=S256&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                {"Cookie": KC_COOKIES})
    renew = _raw("POST", "/realms/seclab/protocol/openid-connect/token", {**FORM, "Cookie": KC_COOKIES},
                 b"grant_type=refresh_token&client_id=seclab-web&refresh_token=eyJhbGciOiJIUzUxMiJ9.e30.c2ln")
    assert [asyncio.run(send_raw(waf(False, level).base_url, r, None)) for r in (auth, renew)] == [200, 200]


def test_block_is_problem_json_with_request_id(waf: Any) -> None:
    inst = waf(False, 2)
    r = httpx.get(inst.base_url + "/api/v1/conversations", params={"q": "1' OR '1'='1"}, headers=AUTH)
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["type"] == "urn:seclab:problem:waf-blocked"
    assert body["status"] == 403 and body["title"]
    assert body["request_id"] == r.headers["x-request-id"] and len(body["request_id"]) == 32


def test_detection_only_logs_but_passes(waf: Any) -> None:
    from benchmarks.waf.local import rule_ids_by_request

    inst = waf(False, 2, "detection-only")
    r = httpx.get(inst.base_url + "/api/v1/conversations", params={"q": "1' OR '1'='1"}, headers=AUTH)
    assert r.status_code == 200
    matched = {rid for ids in rule_ids_by_request(inst).values() for rid in ids}
    assert any(rid.startswith("942") for rid in matched), matched


# A JWT as Keycloak issues it, whose base64url signature holds '--' and a later '-' (942440 at PL2).
KC_JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.gwnMeQOSvdsDYs8DxWPrR_Pz5xEFPfmpKpxP--Qx7-ab_c"


@pytest.mark.parametrize("level", [1, 2])
def test_keycloak_logout_and_renewal_with_a_jwt_pass_and_other_parameters_keep_crs(waf: Any, level: int) -> None:
    """The page's logout (id_token_hint) and silent renewal (refresh_token) carry JWTs that stock CRS refuses
    at PL2 (942440); the lab passes them on Keycloak's endpoints, and an injection in another parameter of
    the same request is still refused."""
    logout = _raw("GET", f"/realms/seclab/protocol/openid-connect/logout?id_token_hint={KC_JWT}"
                  "&post_logout_redirect_uri=https%3A%2F%2Flocalhost%2F", {})
    renew = _raw("POST", "/realms/seclab/protocol/openid-connect/token", FORM,
                 f"grant_type=refresh_token&client_id=seclab-web&refresh_token={KC_JWT}".encode())
    lab = [asyncio.run(send_raw(waf(False, level).base_url, r, None)) for r in (logout, renew)]
    stock = [asyncio.run(send_raw(waf(True, level).base_url, r, None)) for r in (logout, renew)]
    assert (lab, stock) == ([200, 200], [403, 403] if level >= 2 else [200, 200])
    injected = _raw("GET", f"/realms/seclab/protocol/openid-connect/logout?id_token_hint={KC_JWT}"
                    "&state=x%27%20OR%201%3D1--", {})
    assert asyncio.run(send_raw(waf(False, level).base_url, injected, None)) == 403
