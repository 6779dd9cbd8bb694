"""Rotation on the live lab: `./lab pki rotate edge app` under a steady stream of HTTPS requests.

Needs the provisioned lab and root (it reads the lab's keys and reloads nginx and the API). It
reloads services, so on a shared host run it under the lab lock:
    flock /tmp/seclab-up.lock .venv/bin/python -m pytest tests/pki/test_pki_rotation_live.py -s
Clients: keep-alive connections (as browsers and the edge's own upstream pool use) and one loop that
opens a new TLS connection per request (every request is a fresh handshake, so it lands on whatever
nginx worker and certificate is current). Every request must answer 200 during the rotation.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

import labdef
from pki.layout import Layout
from pki.probe import client_context, file_sha256, presented_sha256

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
KEEPALIVE_CLIENTS = 4


@dataclass
class Tally:
    sent: int = 0
    failed: int = 0
    retried: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def fail(self, why: str) -> None:
        self.failed += 1
        self.errors[why] = self.errors.get(why, 0) + 1


@pytest.fixture(scope="module")
def live() -> tuple[labdef.LabDefinition, Layout]:
    lab = labdef.load()
    layout = Layout(Path(lab.paths.pki))
    missing = not (Path(lab.paths.etc) / "lab.json").is_file() or not layout.ca_bundle.is_file()
    if missing or os.geteuid() != 0:
        if os.environ.get("SECLAB_REQUIRE_LAB") == "1":
            pytest.fail("lab not provisioned or not root: run ./lab up as root (SECLAB_REQUIRE_LAB=1)")
        pytest.skip("needs the provisioned lab and root")
    return lab, layout


async def _edge_sha(lab: labdef.LabDefinition, layout: Layout) -> str:
    ctx = client_context(layout.ca_bundle, None, check_name=True)
    return await presented_sha256("127.0.0.1", lab.ports.edge_https, ctx, server_name=lab.edge.host_names[0])


async def _app_shas(lab: labdef.LabDefinition, layout: Layout, n: int = 8) -> set[str]:
    """Several handshakes: the API has more than one worker, each with its own TLS context."""
    ctx = client_context(layout.ca_bundle, (layout.chain("edge-client"), layout.key("edge-client")), True)
    return {await presented_sha256("127.0.0.1", lab.ports.app, ctx, server_name="127.0.0.1") for _ in range(n)}


async def _stream(url: str, ca: str, tally: Tally, stop: asyncio.Event, fresh: bool) -> None:
    verify = ssl.create_default_context(cafile=ca)
    client = None if fresh else httpx.AsyncClient(verify=verify, timeout=10)
    try:
        while not stop.is_set():
            tally.sent += 1
            try:
                if fresh:
                    async with httpx.AsyncClient(verify=verify, timeout=10) as c:
                        r = await c.get(url)
                else:
                    assert client is not None
                    try:
                        r = await client.get(url)
                    except httpx.RemoteProtocolError:
                        # A reload closes idle keep-alive connections; a request that crossed the close on
                        # a reused connection got no response at all. Every HTTP client retries such an
                        # idempotent request once on a new connection (RFC 9110 9.2.2); a second failure counts.
                        tally.retried += 1
                        r = await client.get(url)
                if r.status_code != 200:
                    tally.fail(f"HTTP {r.status_code}")
            except httpx.HTTPError as exc:
                tally.fail(type(exc).__name__)
            await asyncio.sleep(0.01)
    finally:
        if client is not None:
            await client.aclose()


async def test_rotate_edge_and_app_drops_no_request(live: tuple[labdef.LabDefinition, Layout]) -> None:
    lab, layout = live
    edge_before, app_before = await _edge_sha(lab, layout), await _app_shas(lab, layout)
    assert edge_before == file_sha256(layout.cert("edge")), "the edge does not serve the certificate on disk"
    assert app_before == {file_sha256(layout.cert("app"))}, "the API does not serve the certificate on disk"

    url = f"https://{lab.edge.host_names[0]}:{lab.ports.edge_https}/healthz"
    tally, stop = Tally(), asyncio.Event()
    streams = [
        asyncio.create_task(_stream(url, str(layout.ca_bundle), tally, stop, fresh=i == 0))
        for i in range(KEEPALIVE_CLIENTS + 1)
    ]
    await asyncio.sleep(2)  # steady state first
    sent_before = tally.sent
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        str(ROOT / "lab"), "pki", "rotate", "edge", "app", "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
    )
    out, err = await proc.communicate()
    took = time.monotonic() - started
    during = tally.sent - sent_before
    await asyncio.sleep(2)  # and after
    stop.set()
    await asyncio.gather(*streams)

    print(
        f"\nrotation edge+app: {took:.1f}s; requests sent {tally.sent} (during rotation {during}), "
        f"failed {tally.failed} {tally.errors}; keep-alive closes retried {tally.retried}"
    )
    assert proc.returncode == 0, err.decode()[-2000:]
    report = json.loads(out)
    assert {"edge", "app"} <= set(report["issued"])
    done = {s["service"]: s for s in report["services"]}
    assert done["app"]["ok"] and done["edge"]["ok"], report["services"]
    assert tally.sent > 100 and during > 20, "the stream was not steady: nothing was measured"
    assert tally.failed == 0, f"{tally.failed} of {tally.sent} requests failed: {tally.errors}"

    edge_after, app_after = await _edge_sha(lab, layout), await _app_shas(lab, layout)
    assert edge_after == file_sha256(layout.cert("edge")) != edge_before
    assert app_after == {file_sha256(layout.cert("app"))} and app_after != app_before
