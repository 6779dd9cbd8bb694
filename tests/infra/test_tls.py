"""TLS of the edge as a client sees it (Mozilla Server Side TLS "intermediate", lab.yml edge.tls_profile).

Why Python's ssl module: each handshake pins one protocol version or one cipher suite, so the test
learns exactly what the server accepts, independently of nginx's configuration text (nginx-12 checks
that). testssl.sh gives the fuller outside view in the report; these checks gate `lab verify`.
"""

from __future__ import annotations

import socket
import ssl
import warnings
from typing import Any

import pytest

from tests.infra.nginx_checks import MOZILLA_INTERMEDIATE_TLS12

MOZILLA_HSTS_MIN = 63072000
"""Mozilla: `max-age=63072000` (two years)."""



@pytest.fixture(scope="module")
def target(host: Any, lab: Any) -> tuple[str, int]:
    """The edge address: loopback for the local backend, the inventory host otherwise."""
    name = "127.0.0.1" if host.backend.NAME == "local" else host.backend.hostname
    return name, lab.ports.edge_https


def _probe_context(version: ssl.TLSVersion, ciphers: str | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():  # TLSv1/TLSv1_1 are deprecated constants: we probe them on purpose
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ctx.maximum_version = version
    ctx.set_ciphers(ciphers or "ALL:@SECLEVEL=0")
    return ctx


def handshake(target: tuple[str, int], ctx: ssl.SSLContext, server_hostname: str | None = None) -> tuple[str, str] | str:
    """(protocol, cipher) on success, else the error text."""
    try:
        with socket.create_connection(target, timeout=5) as raw, ctx.wrap_socket(raw, server_hostname=server_hostname) as tls:
            cipher = tls.cipher()
            return tls.version() or "", cipher[0] if cipher else ""
    except ssl.SSLError as exc:
        return f"{type(exc).__name__}: {exc}"
    except OSError as exc:
        # Not a TLS answer at all: nothing proves the server refused the version or suite.
        pytest.fail(f"edge {target[0]}:{target[1]} unreachable: {exc}")


def _client_cannot(err: str) -> bool:
    """The local OpenSSL refused to offer the version/suite: the probe proved nothing."""
    return "NO_PROTOCOLS_AVAILABLE" in err or "NO_CIPHERS_AVAILABLE" in err or "no ciphers available" in err


@pytest.mark.parametrize("version,accepted", [
    (ssl.TLSVersion.TLSv1, False), (ssl.TLSVersion.TLSv1_1, False),
    (ssl.TLSVersion.TLSv1_2, True), (ssl.TLSVersion.TLSv1_3, True),
], ids=["TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"])
def test_tls_01_protocols(target: tuple[str, int], lab: Any, version: ssl.TLSVersion, accepted: bool) -> None:
    """Intermediate: TLS 1.2 and 1.3 only (modern: 1.3 only). Old versions must be refused by the server."""
    if lab.edge.tls_profile == "modern" and version == ssl.TLSVersion.TLSv1_2:
        accepted = False
    result = handshake(target, _probe_context(version))
    if isinstance(result, str):
        assert not _client_cannot(result), f"this client cannot offer {version.name}: probe inconclusive ({result})"
        assert not accepted, f"{version.name} refused: {result}"
    else:
        assert accepted, f"{version.name} accepted ({result[1]})"


def test_tls_02_cipher_suites(target: tuple[str, int], lab: Any) -> None:
    """Every TLS 1.2 suite the server accepts is one of Mozilla intermediate's; at least one is accepted."""
    if lab.edge.tls_profile == "modern":
        pytest.fail("modern profile: check TLS 1.3 suites only (not implemented; lab.yml uses intermediate)")
    offered = [c["name"] for c in _probe_context(ssl.TLSVersion.TLSv1_2).get_ciphers()
               if c["protocol"] != "TLSv1.3"]
    accepted = []
    for name in offered:
        result = handshake(target, _probe_context(ssl.TLSVersion.TLSv1_2, f"{name}:@SECLEVEL=0"))
        if not isinstance(result, str):
            accepted.append(result[1])
    assert accepted, "no TLS 1.2 suite accepted"
    extra = sorted(set(accepted) - MOZILLA_INTERMEDIATE_TLS12)
    assert not extra, f"suites outside Mozilla intermediate: {extra}"


def test_tls_03_certificate(target: tuple[str, int], lab: Any) -> None:
    """The edge certificate chains to the lab CA and carries the lab's host name (no verify bypass)."""
    ca = f"{lab.paths.pki}/ca/ca-bundle.crt"
    ctx = ssl.create_default_context(cafile=ca)
    result = handshake(target, ctx, server_hostname=lab.edge.host_names[0])
    assert not isinstance(result, str), f"verification against {ca} failed: {result}"


def test_tls_04_hsts(target: tuple[str, int], lab: Any) -> None:
    """HSTS on every https response, errors included (max-age >= two years: Mozilla; DevSec nginx-13)."""
    import httpx

    url = f"https://{target[0]}:{target[1]}/"
    try:
        r = httpx.get(url, verify=False, timeout=5, headers={"Host": lab.edge.host_names[0]})
    except httpx.HTTPError as exc:
        pytest.fail(f"{url}: {exc}")
    hsts = r.headers.get("strict-transport-security", "")
    assert "max-age=" in hsts, f"no HSTS header on {r.status_code} response"
    assert int(hsts.split("max-age=")[1].split(";")[0]) >= MOZILLA_HSTS_MIN, hsts
