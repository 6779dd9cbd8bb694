"""Which certificate does a listener present right now? One TLS handshake, the leaf's SHA-256.

Why a handshake and not the file: a reload can fail quietly (nginx keeps its old workers when the
new configuration does not load; a uvicorn worker that cannot start leaves the old one serving), so
"reloaded" is only true when the listener presents the certificate that is on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
import struct
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

# PostgreSQL's SSLRequest: length 8, code 80877103 (PostgreSQL 15 docs 55.2.10 "SSL Session Encryption").
_PG_SSL_REQUEST = struct.pack("!ii", 8, 80877103)


def file_sha256(cert_path: Path) -> str:
    """SHA-256 of the DER leaf in a PEM file (the first certificate of a chain file)."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def client_context(ca_file: Path, client: tuple[Path, Path] | None, check_name: bool) -> ssl.SSLContext:
    """Verifies the chain against the lab root (a probe must not trust what it measures blindly)."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # Mozilla "intermediate", as every lab listener
    ctx.check_hostname = check_name
    if client is not None:
        ctx.load_cert_chain(str(client[0]), str(client[1]))
    return ctx


async def presented_sha256(
    host: str,
    port: int,
    ctx: ssl.SSLContext,
    *,
    server_name: str | None,
    postgres: bool = False,
    timeout_s: float = 5.0,
) -> str:
    """SHA-256 (hex) of the DER leaf the listener at host:port presents; raises OSError/ssl.SSLError."""

    async def _handshake() -> str:
        if postgres:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(_PG_SSL_REQUEST)
            await writer.drain()
            if await reader.readexactly(1) != b"S":
                writer.close()
                raise ssl.SSLError("PostgreSQL refused SSLRequest")
            await writer.start_tls(ctx, server_hostname=server_name)
        else:
            reader, writer = await asyncio.open_connection(host, port, ssl=ctx, server_hostname=server_name)
        try:
            ssl_obj = writer.get_extra_info("ssl_object")
            der = ssl_obj.getpeercert(binary_form=True) if ssl_obj is not None else None
            if not der:
                raise ssl.SSLError("no peer certificate")
            return hashlib.sha256(der).hexdigest()
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError, asyncio.IncompleteReadError):
                await writer.wait_closed()

    return await asyncio.wait_for(_handshake(), timeout_s)
