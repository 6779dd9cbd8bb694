"""What per-tenant login pools cost: connections and memory at N tenants (issue 14, part 1).

`python -m tools.tenant_pools --tenants 10,100` on a provisioned lab, as root (it reads the
server backends' /proc/<pid>/smaps_rollup and the owner's password). For each N it creates N throw-away
tenants (`zp<run>_<i>`), runs one transaction in each through `TenantPools` (what the API and the
worker do), and reports:
- server side: backends of those roles, and per backend its private memory and PSS (shared buffers
  counted proportionally) from smaps_rollup;
- client side: this process's RSS growth per pool (asyncpg pool + one connection + TLS state);
- with more tenants than `max_pools`, the least recently used idle pool closes (so backends <= max_pools);
- after the idle time: connections still open (the pools' min_size is 0, so this should be 0).
The tenants are removed afterwards (also on an error). Prints one JSON line per N.
White-box (it drives the app's own `TenantPools`), so it lives in tools/, not in benchmarks/ (black-box
runs only, tests/test_import_rules.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from app.core.config import load_settings
from app.db import tenancy
from app.db.connect import connect_owner
from app.db.pools import TenantPools


def _kib(pid: int, fields: tuple[str, ...]) -> int:
    total = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in fields:
                total += int(rest.split()[0])
    except OSError:
        return 0
    return total


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def _backends(owner: asyncpg.Connection, prefix: str) -> list[int]:
    await owner.execute("SELECT pg_stat_clear_snapshot()")
    rows = await owner.fetch("SELECT pid FROM pg_stat_activity WHERE usename LIKE $1", f"tenant_{prefix}%")
    return [r["pid"] for r in rows]


async def measure(n: int, idle_s: float, max_pools: int | None) -> dict[str, Any]:
    settings = load_settings()
    login = tenancy.TenantLogin.from_settings(settings)
    prefix = f"zp{uuid.uuid4().hex[:6]}"
    names = [f"{prefix}_{i:03d}" for i in range(n)]
    owner = await connect_owner(settings)
    pools = TenantPools(settings, application_name="seclab-bench", max_pools=max_pools, idle_s=idle_s)
    out: dict[str, Any] = {"tenants": n, "max_pools": pools.max_pools, "per_tenant_max": pools.per_tenant_max}
    try:
        t0 = time.perf_counter()
        for name in names:
            await tenancy.create_tenant(owner, name, "bench", login)
        out["create_s_per_tenant"] = round((time.perf_counter() - t0) / n, 4)
        rss0 = _rss_kib()
        t0 = time.perf_counter()
        for name in names:
            async with pools.transaction(name) as conn:
                await conn.fetchval("SELECT count(*) FROM conversations")
        out["first_tx_ms_per_tenant"] = round((time.perf_counter() - t0) * 1000 / n, 2)
        t0 = time.perf_counter()
        for name in names:
            async with pools.transaction(name) as conn:
                await conn.fetchval("SELECT count(*) FROM conversations")
        out["warm_tx_ms_per_tenant"] = round((time.perf_counter() - t0) * 1000 / n, 3)
        out["client_rss_kib_per_pool"] = round((_rss_kib() - rss0) / n, 1)
        pids = await _backends(owner, prefix)
        out["server_backends"] = len(pids)
        out["pools"] = len(pools.stats())
        out["connections_in_pools"] = sum(s["size"] for s in pools.stats().values())
        private = [_kib(p, ("Private_Clean", "Private_Dirty")) for p in pids]
        pss = [_kib(p, ("Pss",)) for p in pids]
        out["backend_private_kib_avg"] = round(sum(private) / max(len(private), 1), 1)
        out["backend_pss_kib_avg"] = round(sum(pss) / max(len(pss), 1), 1)
        out["server_private_mib_total"] = round(sum(private) / 1024, 1)
        await asyncio.sleep(idle_s + 2)  # asyncpg closes connections idle longer than idle_s
        out["server_backends_after_idle"] = len(await _backends(owner, prefix))
    finally:
        await pools.close()
        for name in names:
            await tenancy.delete_tenant(owner, name, "bench", login)
        await owner.close()
    return out


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m tools.tenant_pools", description=__doc__.splitlines()[0])
    p.add_argument("--tenants", default="10,100", help="comma-separated tenant counts")
    p.add_argument("--idle-s", type=float, default=5.0, help="pool idle time before a connection closes")
    p.add_argument("--max-pools", type=int, default=None, help="pools held at once (default: the settings')")
    args = p.parse_args()
    if os.geteuid() != 0:
        print(json.dumps({"error": "run as root (reads the backends' smaps and the owner's password)"}))
        return 2
    for n in (int(x) for x in args.tenants.split(",")):
        print(json.dumps(asyncio.run(measure(n, args.idle_s, args.max_pools))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
