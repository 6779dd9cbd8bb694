"""`lab status`: probes every lab service over loopback and names the identity provider in use.

Probes speak each service's protocol (TCP accept, HTTP health) instead of trusting the process
manager: a running process that does not answer is not "up" for the person using the lab.
"""

from __future__ import annotations

import json
import socket
import ssl
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from seclab.labdef import LabDefinition


def _tcp_up(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _http_ok(url: str, verify: Any = False, timeout: float = 2.0) -> bool:
    try:
        r = httpx.get(url, verify=verify, timeout=timeout)
        return r.status_code < 500
    except (httpx.HTTPError, ssl.SSLError, OSError):
        return False


def ca_cert_path(lab: LabDefinition) -> Path:
    return Path(lab.paths.pki) / "ca" / "ca-bundle.crt"


def realm_export_path(lab: LabDefinition) -> Path:
    return Path(lab.paths.data) / "realm" / "realm-export.json"


def idp_info(lab: LabDefinition) -> dict[str, Any]:
    """Which IdP runs is decided at provisioning and recorded in `<etc>/idp.json`."""
    recorded = Path(lab.paths.etc) / "idp.json"
    kind = "stand-in"
    issuer = lab.issuer
    try:
        data = json.loads(recorded.read_text())
        kind = data.get("kind", kind)
        issuer = data.get("issuer", issuer)
    except (OSError, ValueError):
        pass
    return {"issuer": issuer, "kind": kind, "internal_url": f"http://127.0.0.1:{lab.ports.idp}"}


def edge_url(lab: LabDefinition) -> str:
    return lab.edge_url


def collect(lab: LabDefinition) -> dict[str, Any]:
    idp = idp_info(lab)
    app_url = f"http://127.0.0.1:{lab.ports.app}"
    services: dict[str, dict[str, Any]] = {
        "postgres": {"up": _tcp_up(lab.ports.postgres), "address": f"127.0.0.1:{lab.ports.postgres}"},
        "redis": {"up": _tcp_up(lab.ports.redis), "address": f"127.0.0.1:{lab.ports.redis}"},
        "app": {"up": _http_ok(f"{app_url}/healthz"), "address": f"127.0.0.1:{lab.ports.app}"},
        "idp": {
            "up": _http_ok(f"{idp['internal_url']}/realms/{lab.identity.realm}/.well-known/openid-configuration"),
            "address": f"127.0.0.1:{lab.ports.idp}",
            "kind": idp["kind"],
        },
    }
    return {
        "lab": lab.name,
        "edge": {"url": edge_url(lab), "ca_cert": str(ca_cert_path(lab))},
        "api": {"url": f"{app_url}/api/v1"},
        "idp": {"issuer": idp["issuer"], "kind": idp["kind"]},
        "realm_export": str(realm_export_path(lab)),
        "services": services,
    }


def print_table(st: dict[str, Any], console: Console) -> None:
    table = Table(title=f"lab {st['lab']}", show_lines=False)
    table.add_column("service")
    table.add_column("state")
    table.add_column("address")
    for name, s in st["services"].items():
        state = "[green]up[/]" if s["up"] else "[red]down[/]"
        table.add_row(name, state, s.get("address", ""))
    console.print(table)
    kind = st["idp"]["kind"]
    note = " [yellow](stand-in: Keycloak could not be installed on this host)[/]" if kind == "stand-in" else ""
    console.print(f"identity provider: {kind}{note}  issuer {st['idp']['issuer']}")
    console.print(f"API: {st['api']['url']}   edge: {st['edge']['url']}   CA: {st['edge']['ca_cert']}")
    console.print(f"realm export: {st['realm_export']}")
