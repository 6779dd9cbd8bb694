"""`python -m logsearch.measure`: the numbers of issue 17, measured on the running lab (never asserted).

- ingest rate: N ECS lines appended to the probe log (a shipped source of its own), timed until all N
  are searchable: the whole path (imfile, queue, gateway, pipelines, engine) in events/s;
- request -> searchable delay: requests through the edge, each timed from its response until its
  nginx access event is found by request id (p50/p95);
- the engine's memory: resident set of the JVM (and the heap it was given).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import statistics
import subprocess
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from labdef import LabDefinition

from .client import GatewaySettings, client

PROBE_DATASET = "logsearch.probe"


def probe_log(lab: LabDefinition) -> Path:
    """The probe source (playbooks/roles/logsearch defaults: logsearch_sources)."""
    return Path(lab.paths.logs) / "logsearch-probe.log"


async def _count(http: httpx.AsyncClient, index: str, field: str, value: str) -> int:
    resp = await http.post(f"/{index}/_count", json={"query": {"term": {field: value}}},
                           params={"ignore_unavailable": "true"})
    return int(resp.json().get("count", 0)) if resp.status_code == 200 else 0


async def ingest_rate(lab: LabDefinition, settings: GatewaySettings, events: int, timeout_s: float) -> dict[str, Any]:
    run = uuid.uuid4().hex[:12]
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    lines = "".join(
        json.dumps({"@timestamp": now, "message": f"probe {i}", "event": {"dataset": PROBE_DATASET},
                    "labels": {"run": run}, "http": {"request": {"id": f"probe-{run}-{i:07d}"}}}) + "\n"
        for i in range(events)
    )
    index = f"{settings.index_prefix}-{PROBE_DATASET}-*"
    start = time.monotonic()
    with probe_log(lab).open("a", encoding="utf-8") as f:
        f.write(lines)
    found = 0
    async with client(settings) as http:
        while time.monotonic() - start < timeout_s:
            found = await _count(http, index, "labels.run", run)
            if found >= events:
                break
            await asyncio.sleep(0.5)
    took = time.monotonic() - start
    return {"events": events, "found": found, "seconds": round(took, 2), "events_per_s": round(found / took, 1)}


async def delays(lab: LabDefinition, settings: GatewaySettings, samples: int, timeout_s: float) -> dict[str, Any]:
    ctx = ssl.create_default_context(cafile=str(Path(lab.paths.pki) / "ca" / "ca-bundle.crt"))
    values: list[float] = []
    index = f"{settings.index_prefix}-nginx.access-*"
    async with httpx.AsyncClient(base_url=lab.edge_url, verify=ctx, timeout=30) as edge, client(settings) as http:
        for _ in range(samples):
            rid = f"delay-{uuid.uuid4().hex[:16]}"
            r = await edge.get("/healthz", headers={"X-Request-ID": rid})
            sent = time.monotonic()
            if r.status_code != 200:
                continue
            while time.monotonic() - sent < timeout_s:
                if await _count(http, index, "http.request.id", rid):
                    values.append(time.monotonic() - sent)
                    break
                await asyncio.sleep(0.05)
    values.sort()
    p95 = values[max(0, round(0.95 * len(values)) - 1)] if values else None
    return {
        "samples": samples,
        "found": len(values),
        "p50_s": round(statistics.median(values), 2) if values else None,
        "p95_s": round(p95, 2) if p95 is not None else None,
        "max_s": round(values[-1], 2) if values else None,
    }


def engine_memory(lab: LabDefinition) -> dict[str, Any]:
    out = subprocess.run(["pgrep", "-u", "opensearch", "-f", "org.opensearch.bootstrap.OpenSearch"],
                         capture_output=True, text=True, check=False)
    pids = out.stdout.split()
    if not pids:
        return {"rss_mb": None}
    status = Path(f"/proc/{pids[0]}/status").read_text()
    rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return {"pid": int(pids[0]), "rss_mb": round(rss_kb / 1024, 1), "heap": lab.logging.heap}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m logsearch.measure")
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--timeout", type=float, default=300.0)
    args = ap.parse_args(argv)
    import labdef

    lab = labdef.load()
    settings = GatewaySettings.from_lab(lab)
    result = {
        "ingest": asyncio.run(ingest_rate(lab, settings, args.events, args.timeout)),
        "request_to_searchable": asyncio.run(delays(lab, settings, args.samples, 60.0)),
        "engine_memory": engine_memory(lab),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
