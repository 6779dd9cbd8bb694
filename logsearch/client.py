"""The mTLS client of the log search gateway (the engine itself has no authentication).

Why mTLS and not a password: the minimal OpenSearch distribution has no security plugin, so the
loopback nginx gateway admits only lab client certificates (log-shipper, log-reader) - ASVS 4.0.3
V9.2.1. Only the lab's tools hold the log-reader key (root-only under paths.pki).
"""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
from pydantic import BaseModel, ConfigDict

from labdef import LabDefinition


class GatewaySettings(BaseModel):
    """Where the gateway listens and which client certificate to present."""

    model_config = ConfigDict(frozen=True)

    url: str
    ca_file: Path
    cert_file: Path
    key_file: Path
    index_prefix: str = "seclab-logs"

    @classmethod
    def from_lab(cls, lab: LabDefinition, client: str = "log-reader") -> GatewaySettings:
        pki = Path(lab.paths.pki)
        return cls(
            url=f"https://127.0.0.1:{lab.ports.logsearch}",
            ca_file=pki / "ca" / "ca-bundle.crt",
            cert_file=pki / "certs" / f"{client}.chain.crt",
            key_file=pki / "private" / f"{client}.key",
        )


def ssl_context(settings: GatewaySettings) -> ssl.SSLContext:
    """Verify the gateway against the lab CA and present the client certificate."""
    ctx = ssl.create_default_context(cafile=str(settings.ca_file))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(str(settings.cert_file), str(settings.key_file))
    return ctx


def client(settings: GatewaySettings, timeout_s: float = 30.0) -> httpx.AsyncClient:
    """A new client (and TLS context) per use: a renewed client certificate is picked up at once."""
    return httpx.AsyncClient(base_url=settings.url, verify=ssl_context(settings), timeout=timeout_s)
