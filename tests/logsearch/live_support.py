"""Helpers of the live logging tests: the lab, the gateway client, polling the engine."""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from labdef import LabDefinition, load
from logsearch.client import GatewaySettings, client
from logsearch.search import LogQuery, dataset_of, search
from tests.conftest import need


def live_lab() -> LabDefinition:
    """The provisioned lab with its log search engine, or need() says what is missing."""
    lab = load()
    need(lab.logging.engine == "opensearch", "lab.yml logging.engine: opensearch")
    need(os.geteuid() == 0, "root (the log-reader key and the lab's logs are root-only)")
    settings = GatewaySettings.from_lab(lab)
    need(settings.key_file.is_file(), f"{settings.key_file} (./lab up issues it)")
    need(Path(lab.paths.etc, "app.env").is_file(), "a provisioned lab (./lab up)")
    return lab


def edge_client(lab: LabDefinition) -> httpx.Client:
    ctx = ssl.create_default_context(cafile=str(Path(lab.paths.pki) / "ca" / "ca-bundle.crt"))
    return httpx.Client(base_url=lab.edge_url, verify=ctx, timeout=30)


def find(lab: LabDefinition, q: LogQuery) -> list[dict[str, Any]]:
    settings = GatewaySettings.from_lab(lab)

    async def _run() -> list[dict[str, Any]]:
        async with client(settings) as http:
            return await search(http, settings.index_prefix, q)

    return asyncio.run(_run())


def wait_for_datasets(lab: LabDefinition, rid: str, wanted: set[str], timeout_s: float = 90.0) -> list[dict[str, Any]]:
    """Poll until events of every wanted dataset carry the request id (or the timeout passes)."""
    deadline = time.monotonic() + timeout_s
    events: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        events = find(lab, LogQuery(request_id=rid))
        if wanted <= {dataset_of(e) for e in events}:
            return events
        time.sleep(1.0)
    return events


def program(action: str, name: str) -> None:
    """Stop or start a lab program under the host's process manager."""
    if shutil.which("supervisorctl") and Path(f"/etc/supervisor/conf.d/{name}.conf").exists():
        cmd = ["supervisorctl", action, name]
    else:
        cmd = ["systemctl", action, f"seclab-{name}"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    assert res.returncode == 0, f"{' '.join(cmd)}: {res.stdout}{res.stderr}"


def request_ids_with_prefix(lab: LabDefinition, dataset: str, prefix: str) -> list[str]:
    """http.request.id of every stored event of one dataset whose id starts with prefix (duplicates kept)."""
    settings = GatewaySettings.from_lab(lab)
    body = {"size": 10000, "query": {"prefix": {"http.request.id": prefix}}, "_source": ["http.request.id"]}

    async def _run() -> list[str]:
        async with client(settings) as http:
            resp = await http.post(f"/{settings.index_prefix}-{dataset}-*/_search", json=body,
                                   params={"ignore_unavailable": "true"})
            resp.raise_for_status()
            return [h["_source"]["http"]["request"]["id"] for h in resp.json()["hits"]["hits"]]

    return asyncio.run(_run())
