"""The chat page in a real browser (Debian's chromium via Playwright) on the live lab: it renders under
its strict CSP with zero violations, says plainly whether logging in is possible, and passes axe-core."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import need
from tests.web.browser import CHROMIUM, axe_serious, browser
from tests.web.conftest import ROOT, lab, node_modules

pytestmark = pytest.mark.integration
MEASUREMENTS = ROOT / "reports" / "web" / "measurements.json"


def record(key: str, value: object) -> None:
    """Numbers for the closing note (reported, never asserted as limits: the machine is shared)."""
    MEASUREMENTS.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(MEASUREMENTS.read_text()) if MEASUREMENTS.exists() else {}
    data[key] = value
    MEASUREMENTS.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


@pytest.fixture(scope="module")
def prerequisites() -> dict[str, Path]:
    try:
        import playwright  # noqa: F401
    except ImportError:
        need(False, "the playwright Python package (pyproject dev extra)")
    need(shutil.which("chromium") is not None or Path(CHROMIUM).exists(), "chromium (the toolbox role installs it)")
    the_lab = lab()
    cert = Path(the_lab.paths.pki) / "certs" / "edge.chain.crt"
    need(cert.is_file(), f"{cert} (./lab up)")
    axe = node_modules() / "axe-core" / "axe.min.js"
    need(axe.is_file(), f"{axe} (the web role's npm ci)")
    return {"cert": cert, "axe": axe}


def test_page_renders_under_its_csp_says_how_to_log_in_and_passes_axe(prerequisites: dict[str, Path], tmp_path: Path) -> None:
    with browser(tmp_path / "profile", prerequisites["cert"]) as run:
        page = run.context.new_page()
        started = time.monotonic()
        page.goto("https://localhost/", wait_until="load")
        # Either Keycloak's login is offered, or the page says plainly why not (the stand-in IdP).
        state = page.locator("button:has-text('Log in'), [role=alert]:has-text('Logging in is not available')")
        state.first.wait_for(timeout=30_000)
        rendered_ms = (time.monotonic() - started) * 1000
        paint = page.evaluate("() => Object.fromEntries(performance.getEntriesByType('paint').map(e => [e.name, e.startTime]))")
        assert page.title() == "seclab chat"
        assert page.get_by_role("heading", name="seclab chat").is_visible()
        bad = axe_serious(page, prerequisites["axe"].read_text())
        assert bad == [], bad
        assert run.csp_violations == [], run.csp_violations
        assert not [e for e in run.console_errors if "Content Security Policy" in e], run.console_errors
        page.screenshot(path=str(MEASUREMENTS.parent / "page-signed-out.png"))
        record("first_render", {"ready_ms": round(rendered_ms), **{k: round(v) for k, v in paint.items()}})
        record("axe_signed_out", {"serious_or_critical": len(bad)})
