"""CPU cost of the WAF per request: stock CRS vs the lab's selection, same request mix.

Why: switching off rule files for platforms the lab does not run (and exempting the message field from
the injection families) should make each request cheaper; this measures it instead of asserting it.
For local instances the nginx worker's CPU time comes from /proc/<pid>/stat (utime + stime); against
--base-url only requests/s are measured (or give --pids of the edge's nginx workers).
Note: stock CRS refuses part of the chat messages, and a refused request skips the proxying to the
backend, so stock's CPU per request is if anything understated; the status column shows the split.

    python -m benchmarks.waf.cpu --start-local --requests 800 --json cpu.json
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from benchmarks.waf.common import (
    CHAT_LEGIT,
    FAKE_BEARER,
    MESSAGE_PATH,
    add_target_args,
    print_table,
    ssl_context,
    targets,
    write_json,
)
from benchmarks.waf.falsepositives import load_prompts

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the given processes, in seconds (fields 14 and 15 of /proc/<pid>/stat)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def request_mix(n: int, prompts: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    """A deterministic mix: 60% chat messages (corpus prompts in order), 25% list, 15% token requests."""
    conv = str(uuid.UUID(int=0x5EC1AB))
    auth = {"Authorization": f"Bearer {FAKE_BEARER}"}
    small = [p["text"] for p in prompts if len(p["text"].encode()) < 60000]
    mix: list[tuple[str, str, dict[str, Any]]] = []
    for i in range(n):
        k = i % 20
        if k < 12:
            mix.append(("POST", MESSAGE_PATH.format(id=conv),
                        {"json": {"content": small[i % len(small)]}, "headers": auth}))
        elif k < 17:
            mix.append(("GET", "/api/v1/conversations?limit=20", {"headers": auth}))
        else:
            mix.append(("POST", "/realms/seclab/protocol/openid-connect/token",
                        {"data": {"grant_type": "password", "client_id": "seclab-cli", "username": "alice",
                                  "password": f"correct-horse-{i}", "scope": "openid"}}))
    return mix


async def drive(base_url: str, mix: list[tuple[str, str, dict[str, Any]]], concurrency: int, verify: Any) -> Counter[int]:
    codes: Counter[int] = Counter()
    queue: asyncio.Queue[tuple[str, str, dict[str, Any]]] = asyncio.Queue()
    for item in mix:
        queue.put_nowait(item)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, verify=verify, timeout=60, limits=limits) as client:
        async def worker() -> None:
            while not queue.empty():
                method, path, kw = queue.get_nowait()
                try:
                    codes[(await client.request(method, path, **kw)).status_code] += 1
                except httpx.HTTPError:
                    codes[0] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return codes


def run(args: argparse.Namespace) -> dict[str, Any]:
    prompts = load_prompts(Path(args.corpus))
    mix = request_mix(args.requests, prompts)
    results = []
    with targets(args) as tgs:
        for t in tgs:
            pids = t.instance.worker_pids() if t.instance else [int(p) for p in args.pids.split(",") if p]
            asyncio.run(drive(t.base_url, mix[: min(50, len(mix))], args.concurrency, ssl_context(args.ca_cert)))
            c0, t0 = cpu_seconds(pids), time.monotonic()
            codes = asyncio.run(drive(t.base_url, mix, args.concurrency, ssl_context(args.ca_cert)))
            wall, cpu = time.monotonic() - t0, cpu_seconds(pids) - c0
            results.append({
                "config": t.label, "paranoia_level": t.paranoia_level, "requests": len(mix),
                "seconds": round(wall, 2), "req_per_s": round(len(mix) / wall, 1),
                "worker_cpu_s": round(cpu, 2) if pids else None,
                "cpu_ms_per_request": round(1000 * cpu / len(mix), 3) if pids else None,
                "status": {str(k): v for k, v in sorted(codes.items())},
            })
    return {"mix": "60% chat message POST, 25% GET list, 15% token POST", "concurrency": args.concurrency,
            "results": results}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_target_args(p)
    p.add_argument("--requests", type=int, default=800, help="requests per configuration (default 800)")
    p.add_argument("--pids", default="", help="with --base-url: nginx worker pids to read CPU time from")
    p.add_argument("--corpus", default=str(CHAT_LEGIT))
    args = p.parse_args()
    data = run(args)
    print(f"mix: {data['mix']}, concurrency {data['concurrency']}")
    print_table(["config", "PL", "requests", "req/s", "worker CPU s", "CPU ms/req", "status"],
                [[r["config"], r["paranoia_level"] or "-", r["requests"], r["req_per_s"], r["worker_cpu_s"],
                  r["cpu_ms_per_request"], " ".join(f"{k}:{v}" for k, v in r["status"].items())]
                 for r in data["results"]])
    write_json(args.json_out, data)


if __name__ == "__main__":
    main()
