"""Drive Debian's chromium with Playwright (no browser download): a persistent context on an empty
profile, the edge's certificate accepted by its key pin only (not by ignoring TLS errors), and every
Content-Security-Policy violation of every page of the run recorded."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
REPORT_CSP = """
document.addEventListener('securitypolicyviolation', (e) => {
  window.seclabCspViolation({uri: document.location.href, directive: e.effectiveDirective,
                             blocked: String(e.blockedURI), sample: e.sample || ''});
});
"""


def spki_pin(cert_pem: bytes) -> str:
    """base64(sha256(SubjectPublicKeyInfo)) of the first certificate: chromium's
    --ignore-certificate-errors-spki-list accepts exactly this key and nothing else."""
    cert = x509.load_pem_x509_certificates(cert_pem)[0]
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@dataclass
class Run:
    context: Any
    csp_violations: list[dict[str, str]] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)


@contextmanager
def _node_trusts(ca_bundle: Path | None) -> Iterator[None]:
    """Playwright's own requests (route.fetch) run in its Node driver, which does not share chromium's key
    pin: the driver trusts the lab CA through NODE_EXTRA_CA_CERTS (read when it starts), nothing more."""
    old = os.environ.get("NODE_EXTRA_CA_CERTS")
    if ca_bundle is not None:
        os.environ["NODE_EXTRA_CA_CERTS"] = str(ca_bundle)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("NODE_EXTRA_CA_CERTS", None)
        else:
            os.environ["NODE_EXTRA_CA_CERTS"] = old


@contextmanager
def browser(profile: Path, edge_cert: Path, ca_bundle: Path | None = None, **context_options: Any) -> Iterator[Run]:
    from playwright.sync_api import sync_playwright

    profile.mkdir(parents=True, exist_ok=True)
    assert not any(profile.iterdir()), "the profile must start empty"
    pin = spki_pin(edge_cert.read_bytes())
    with _node_trusts(ca_bundle), sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True,
            args=[*ARGS, f"--ignore-certificate-errors-spki-list={pin}"], **context_options,
        )
        run = Run(context)
        context.expose_binding("seclabCspViolation", lambda _src, v: run.csp_violations.append(v))
        context.add_init_script(REPORT_CSP)

        def on_console(message: Any) -> None:
            if message.type == "error":
                run.console_errors.append(message.text)

        def on_page(page: Any) -> None:
            page.on("console", on_console)

        context.on("page", on_page)
        for p in context.pages:
            on_page(p)
        try:
            yield run
        finally:
            context.close()


def axe_serious(page: Any, axe_source: str) -> list[str]:
    """axe-core's serious and critical violations of the page as it is now (id: help, count)."""
    page.evaluate(axe_source)
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [f"{v['id']}: {v['help']} ({len(v['nodes'])})" for v in result["violations"]
            if v.get("impact") in ("serious", "critical")]
