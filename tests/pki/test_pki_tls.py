"""Real TLS handshakes over 127.0.0.1 with OpenSSL (Python's ssl): the certificates work in practice.

An asyncio TLS server presents the `app` chain and requires a client certificate (mTLS, as the
edge -> app hop does); the CRL bundle is loaded with CRL checks on the whole chain, like nginx's
`ssl_crl` and PostgreSQL's `ssl_crl_file`.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pki.ca import ensure, revoke
from pki.layout import Layout
from pki.model import PkiPlan

REFUSED = (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError, EOFError)


def server_context(layout: Layout, with_crl: bool = True) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(layout.ca_bundle))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # Mozilla intermediate
    ctx.load_cert_chain(layout.chain("app"), layout.key("app"))
    ctx.verify_mode = ssl.CERT_REQUIRED
    if with_crl:
        ctx.load_verify_locations(cafile=str(layout.crl_bundle))
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_CHAIN
    return ctx


def client_context(layout: Layout, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(layout.ca_bundle))
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    return ctx


class Server:
    def __init__(self) -> None:
        self.peers: list[str] = []
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            peer = writer.get_extra_info("peercert") or {}
            cn = next((v for rdn in peer.get("subject", ()) for k, v in rdn if k == "commonName"), "")
            await reader.readline()
            self.peers.append(cn)
            writer.write(f"hello {cn}\n".encode())
            await writer.drain()
        except REFUSED:
            pass
        finally:
            writer.close()


async def _serve(ctx: ssl.SSLContext) -> AsyncIterator[Server]:
    state = Server()
    srv = await asyncio.start_server(state.handle, "127.0.0.1", 0, ssl=ctx)
    state.port = srv.sockets[0].getsockname()[1]
    async with srv:
        yield state
    srv.close()
    await srv.wait_closed()


async def talk(port: int, ctx: ssl.SSLContext, host: str = "localhost") -> bytes:
    """One request; returns the answer, or raises when the TLS layer refuses."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=host), 5
    )
    try:
        writer.write(b"ping\n")
        await writer.drain()
        # TLS 1.3: the server judges the client certificate after the client's handshake is
        # done, so a refusal shows up here, on the first read, as an alert or an EOF.
        line = await asyncio.wait_for(reader.readline(), 5)
        if not line:
            raise EOFError("server closed the connection")
        return line
    finally:
        writer.close()


@pytest.fixture
async def mtls(layout: Layout) -> AsyncIterator[Server]:
    async for s in _serve(server_context(layout)):
        yield s


async def test_client_with_lab_cert_is_accepted(layout: Layout, mtls: Server) -> None:
    ctx = client_context(layout, layout.chain("edge-client"), layout.key("edge-client"))
    assert await talk(mtls.port, ctx) == b"hello edge-client\n"
    assert mtls.peers == ["edge-client"]


async def test_root_only_bundle_verifies_server_by_ip(layout: Layout, mtls: Server) -> None:
    ctx = client_context(layout, layout.chain("seclab_app"), layout.key("seclab_app"))
    assert await talk(mtls.port, ctx, host="127.0.0.1") == b"hello seclab_app\n"


async def test_client_without_cert_is_refused(layout: Layout, mtls: Server) -> None:
    with pytest.raises(REFUSED):
        await talk(mtls.port, client_context(layout))
    assert mtls.peers == []


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edge-client")])
    now = datetime.now(UTC)
    c = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cp, kp = tmp / "self.crt", tmp / "self.key"
    cp.write_bytes(c.public_bytes(serialization.Encoding.PEM))
    kp.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    kp.chmod(0o600)
    return cp, kp


async def test_self_signed_client_is_refused(layout: Layout, mtls: Server, tmp_path: Path) -> None:
    cp, kp = _self_signed(tmp_path)
    with pytest.raises(REFUSED):
        await talk(mtls.port, client_context(layout, cp, kp))
    assert mtls.peers == []


async def test_server_cert_cannot_be_used_as_client_cert(layout: Layout, mtls: Server) -> None:
    ctx = client_context(layout, layout.chain("postgres"), layout.key("postgres"))
    with pytest.raises(REFUSED):
        await talk(mtls.port, ctx)
    assert mtls.peers == []


async def test_revoked_client_is_refused(plan: PkiPlan, layout: Layout) -> None:
    revoke(plan, layout.root, "edge-client", reason=x509.ReasonFlags.key_compromise)
    # A new server context stands for the service's reload hook re-reading crl.pem.
    async for srv in _serve(server_context(layout)):
        ctx = client_context(layout, layout.chain("edge-client"), layout.key("edge-client"))
        with pytest.raises(REFUSED):
            await talk(srv.port, ctx)
        ok = client_context(layout, layout.chain("worker"), layout.key("worker"))
        assert await talk(srv.port, ok) == b"hello worker\n"
        assert srv.peers == ["worker"]


async def test_client_refuses_server_from_another_ca(plan: PkiPlan, layout: Layout, tmp_path: Path) -> None:
    other = Layout(tmp_path / "other-pki")
    ensure(plan, other.root)
    async for srv in _serve(server_context(other)):
        ctx = client_context(layout, layout.chain("edge-client"), layout.key("edge-client"))
        with pytest.raises(ssl.SSLCertVerificationError):
            await talk(srv.port, ctx)


async def test_client_refuses_wrong_host_name(layout: Layout, mtls: Server) -> None:
    ctx = client_context(layout, layout.chain("edge-client"), layout.key("edge-client"))
    with pytest.raises(ssl.SSLCertVerificationError):
        await talk(mtls.port, ctx, host="evil.example")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_openssl_verifies_with_crl_check_all(layout: Layout) -> None:
    """The same check nginx (ssl_crl) and PostgreSQL (ssl_crl_file) do: CRLs for every CA."""
    cmd = [
        "openssl",
        "verify",
        "-crl_check_all",
        "-CAfile",
        str(layout.ca_bundle),
        "-untrusted",
        str(layout.intermediate_cert),
        "-CRLfile",
        str(layout.crl_bundle),
    ]
    for purpose, name in (("sslserver", "edge"), ("sslclient", "seclab_app")):
        out = subprocess.run(
            [*cmd, "-purpose", purpose, str(layout.cert(name))], capture_output=True, text=True, check=False
        )
        assert out.returncode == 0, out.stdout + out.stderr
    # The wrong purpose fails: the EKU is enforced by OpenSSL too.
    bad = subprocess.run(
        [*cmd, "-purpose", "sslclient", str(layout.cert("edge"))], capture_output=True, text=True, check=False
    )
    assert bad.returncode != 0
