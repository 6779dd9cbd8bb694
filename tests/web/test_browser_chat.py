"""The chat page end to end in a real browser against the live lab and real Keycloak: log in through
Keycloak's own form as alice, create a conversation, send a message and see the reply arrive without a
reload, see none of bob's conversations, render an XSS payload as text, renew an expired access token
silently, log out (ending the Keycloak session); zero CSP violations over the whole run."""

from __future__ import annotations

import json
import ssl
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import need
from tests.web.browser import axe_serious, browser
from tests.web.conftest import ROOT, lab
from tests.web.test_browser_page import prerequisites, record  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration

BASE = "https://localhost"
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>[x](javascript:window.__xss=3)'


def _token(user: str) -> str:
    from labdef.tokens import get_access_token

    return get_access_token(lab(), user)


def _keycloak_runs() -> bool:
    the_lab = lab()
    ca = Path(the_lab.paths.pki) / "ca" / "ca-bundle.crt"
    try:
        d = httpx.get(f"{BASE}/realms/{the_lab.identity.realm}/.well-known/openid-configuration", verify=ssl.create_default_context(cafile=str(ca)), timeout=10).json()
    except (httpx.HTTPError, ValueError):
        return False
    return "code" in d.get("response_types_supported", []) and not d.get("seclab_stand_in")


@pytest.fixture(scope="module")
def bob_conversation(prerequisites: dict[str, Path]) -> str:  # noqa: F811
    need(_keycloak_runs(), "Keycloak with a browser login behind the edge (./lab up)")
    ca = Path(lab().paths.pki) / "ca" / "ca-bundle.crt"
    title = f"bob-private-{uuid.uuid4().hex[:8]}"
    r = httpx.post(f"{BASE}/api/v1/conversations", json={"title": title}, verify=ssl.create_default_context(cafile=str(ca)), timeout=15,
                   headers={"Authorization": f"Bearer {_token('bob')}"})
    assert r.status_code == 201, r.text
    return title + "|" + r.json()["id"]


def _login(page: Any, user: str) -> None:
    """Keycloak's own form with the lab's generated password, then its TOTP step when the realm asks
    for one (lab-admins); the page shows the user once the code came back to /callback."""
    from labdef.tokens import user_password, user_totp

    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/realms/**", timeout=30_000)
    page.locator("#username").fill(user)
    page.locator("#password").fill(user_password(lab(), user))
    page.locator("#kc-login").click()
    signed_in = page.get_by_text(f"Signed in as {user}")
    otp = page.locator("#otp")
    signed_in.or_(otp).first.wait_for(timeout=30_000)
    if otp.is_visible():
        code = user_totp(lab(), user)
        assert code, f"Keycloak asks {user} for a TOTP but the lab holds no seed for them"
        otp.fill(code)
        page.locator("#kc-login").click()
    signed_in.wait_for(timeout=30_000)


def _poisoned(doc: Any) -> Any:
    """The same JSON with the content of every assistant message replaced by the XSS payload."""
    if isinstance(doc, dict):
        out = {k: _poisoned(v) for k, v in doc.items()}
        if out.get("role") == "assistant" and isinstance(out.get("content"), str):
            out["content"] = XSS
        return out
    if isinstance(doc, list):
        return [_poisoned(v) for v in doc]
    return doc


def _poison_replies(route: Any) -> None:
    """Route handler: JSON bodies and the data lines of an event stream, rewritten by _poisoned."""
    res = route.fetch()
    body = res.text()
    if res.headers.get("content-type", "").startswith("text/event-stream"):
        lines = []
        for line in body.split("\n"):
            if line.startswith("data: {"):
                line = "data: " + json.dumps(_poisoned(json.loads(line[6:])))
            lines.append(line)
        body = "\n".join(lines)
    elif body.startswith("{"):
        body = json.dumps(_poisoned(json.loads(body)))
    route.fulfill(response=res, body=body)


def test_alice_logs_in_chats_live_and_logs_out(prerequisites: dict[str, Path], bob_conversation: str, tmp_path: Path) -> None:  # noqa: F811
    bob_title, bob_id = bob_conversation.split("|")
    token_requests: list[str] = []
    api_bearers: list[str] = []
    ca = Path(lab().paths.pki) / "ca" / "ca-bundle.crt"
    with browser(tmp_path / "profile", prerequisites["cert"], ca_bundle=ca) as run:
        page = run.context.new_page()
        def on_request(r: Any) -> None:
            if r.method == "POST" and r.url.endswith("/openid-connect/token"):
                token_requests.append(r.post_data or "")
            if "/api/v1/" in r.url:
                api_bearers.append(r.headers.get("authorization", ""))

        page.on("request", on_request)
        page.clock.install()
        page.goto(f"{BASE}/")
        _login(page, "alice")
        assert page.url == f"{BASE}/", page.url  # back from /callback, code and state gone from the URL
        assert any("grant_type=authorization_code" in t and "code_verifier=" in t for t in token_requests)
        # Tokens in memory only: nothing in web storage or script-readable cookies.
        stored = page.evaluate("() => [JSON.stringify(localStorage), JSON.stringify(sessionStorage), document.cookie]")
        assert all("eyJ" not in s for s in stored), stored

        # A conversation of alice's own; bob's (another tenant) appears nowhere.
        page.get_by_label("Title").fill("browser test")
        page.get_by_role("button", name="New conversation").click()
        box = page.get_by_role("textbox", name="Message")
        box.wait_for()
        assert page.get_by_text(bob_title).count() == 0
        alice_bearer = next(b for b in reversed(api_bearers) if b.startswith("Bearer "))
        r = httpx.get(f"{BASE}/api/v1/conversations/{bob_id}", headers={"Authorization": alice_bearer}, verify=ssl.create_default_context(cafile=str(ca)))
        assert r.status_code == 404  # with alice's own token from the page: bob's id does not exist for her

        # Send: pending at once, the reply arrives without a reload (the document is never replaced).
        page.evaluate("() => { window.__sameDocument = true; }")
        messages = page.get_by_role("list", name="Messages")
        t0 = time.monotonic()
        box.fill("What is TLS?")
        page.get_by_role("button", name="Send").click()
        messages.get_by_text("What is TLS?").wait_for(timeout=5_000)
        pending_ms = (time.monotonic() - t0) * 1000
        messages.locator("li[data-role=assistant]").first.wait_for(timeout=90_000)
        answered_ms = (time.monotonic() - t0) * 1000
        assert page.evaluate("() => window.__sameDocument") is True
        page.screenshot(path=str(ROOT / "reports" / "web" / "page-chat.png"))
        record("answered_message", {"pending_shown_ms": round(pending_ms), "reply_shown_ms": round(answered_ms)})

        # Model output is untrusted: every assistant message the API hands the page (the send's answer,
        # the live event stream, the history re-read after it) is rewritten to an XSS payload in transit;
        # it renders as text and runs nothing.
        page.route("**/api/v1/conversations/**", _poison_replies)
        box.fill("Say hello")
        page.get_by_role("button", name="Send").click()
        messages.get_by_text("window.__xss=1", exact=False).first.wait_for(timeout=90_000)
        page.wait_for_timeout(1_000)  # let any stream and history re-read land before looking
        page.unroute("**/api/v1/conversations/**", _poison_replies)
        assert page.evaluate("() => window.__xss") is None
        assert messages.locator("img, script").count() == 0
        assert all(h.startswith("https:") for h in messages.locator("a").evaluate_all("as => as.map(a => a.href)"))

        bad = axe_serious(page, prerequisites["axe"].read_text())
        record("axe_signed_in", {"serious_or_critical": len(bad)})
        assert bad == [], bad

        # Silent renewal: the browser's clock jumps past the access token's lifetime (300 s); the next
        # request goes out with a renewed token, obtained with the refresh token, no login form.
        before = len(token_requests)
        old_bearer = api_bearers[-1]
        page.clock.fast_forward("06:00")
        box.fill("Still there?")
        page.get_by_role("button", name="Send").click()
        messages.get_by_text("Still there?").wait_for(timeout=10_000)
        page.wait_for_function("() => document.querySelectorAll('li[data-role=assistant]').length >= 3", timeout=90_000)
        assert any("grant_type=refresh_token" in t for t in token_requests[before:])
        assert api_bearers[-1] != old_bearer
        assert page.get_by_text("Signed in as alice").is_visible()

        # Logout ends the Keycloak session: logging in again shows the form, not a silent SSO login.
        page.get_by_role("button", name="Log out").click()
        page.get_by_role("button", name="Log in").wait_for(timeout=30_000)
        page.get_by_role("button", name="Log in").click()
        page.locator("#username").wait_for(timeout=30_000)

        assert run.csp_violations == [], run.csp_violations
        assert not [e for e in run.console_errors if "Content Security Policy" in e], run.console_errors
