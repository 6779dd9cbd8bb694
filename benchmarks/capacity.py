"""`lab bench --capacity`: which resource runs out first when the quotas are not the limit.

Why a separate judgement from benchmarks/analysis.py: a stepped `lab bench` says how many users the
lab holds *within its quotas*; capacity asks what the host could serve, so the quotas are raised for
the run (seclab/commands/bench_layers.py `quotas_raised`) and each step also records what every
process group used (benchmarks/layers.py /proc accounting). At the first step that misses the p95
target or shows errors, the first resource at its ceiling is named:

- a single process at a full core (a one-thread event loop or server: an app worker, Redis, one
  nginx worker) - more cores do not help it, more processes would;
- the host's CPU (the groups together at >= 90 % of the cores);
- PostgreSQL connections (the app's problem types for an unavailable database, or backends at the
  tenant connection limit), the model server (chat turns whose reply did not come within the wait);
- otherwise "latency without a saturated resource" (e.g. the load generator itself on this host).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from benchmarks.layers import GROUPS, Proc, assign_groups

CORE_FULL = 0.9
"""A process at >= 90 % of one core is at its ceiling (sampling and scheduling hide the last bit)."""
HOST_FULL = 0.9
DB_CAUSES = ("db-unavailable", "database-unavailable", "service-unavailable", "upstream-unavailable")


def host_cpu(stat_text: str) -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat's first line."""
    f = [int(x) for x in stat_text.splitlines()[0].split()[1:]]
    idle = f[3] + (f[4] if len(f) > 4 else 0)
    return sum(f) - idle, sum(f)


def read_host_cpu(path: Path = Path("/proc/stat")) -> tuple[int, int]:
    return host_cpu(path.read_text())


def per_process_cores(before: dict[int, Proc], after: dict[int, Proc], seconds: float,
                      tick: int = os.sysconf("SC_CLK_TCK")) -> list[dict[str, Any]]:
    """Cores each lab process used in the window (own utime+stime only, so a parent is not charged for
    its children), busiest first; a process that started in the window counts from zero."""
    groups = assign_groups(after)
    out = []
    for pid, p in after.items():
        g = groups.get(pid)
        if g is None or seconds <= 0:
            continue
        b = before.get(pid)
        own0 = b.own if b is not None and b.start == p.start else 0
        out.append({"pid": pid, "group": g, "comm": p.comm, "cores": round((p.own - own0) / tick / seconds, 3)})
    return sorted(out, key=lambda r: -r["cores"])


def group_cores(procs: list[dict[str, Any]]) -> dict[str, float]:
    out = dict.fromkeys(GROUPS, 0.0)
    for r in procs:
        out[r["group"]] = round(out[r["group"]] + r["cores"], 3)
    return out


def saturated(step: dict[str, Any], ncpu: int) -> dict[str, Any]:
    """The first resource at its ceiling in one step: {"resource", "detail"}."""
    procs = step.get("processes") or []
    hot = [r for r in procs if r["cores"] >= CORE_FULL]
    if hot:
        r = hot[0]
        return {"resource": f"CPU of one {r['group']} process",
                "detail": f"{r['comm']} (pid {r['pid']}) at {r['cores']:.2f} of one core: a single process at its "
                          f"ceiling; more of them (workers) would help, more cores alone would not"}
    busy = step.get("host_busy")
    if busy is not None and busy >= HOST_FULL:
        gc = step.get("group_cores") or {}
        top = max(gc, key=lambda g: gc[g]) if gc else "?"
        lab = sum(gc.values())
        shared = lab < 0.5 * busy * ncpu  # less than half of the busy CPU is the lab's
        return {"resource": "host CPU" + (" (taken mostly outside the lab)" if shared else ""),
                "detail": f"{100 * busy:.0f} % of {ncpu} cores busy, the lab's processes {lab:.2f} cores of it "
                          f"(largest: {top} {gc.get(top, 0):.2f})"
                          + ("; the rest is the load generator and other work on this machine: a shared host "
                             "caps the lab before any of its own resources" if shared else "")}
    causes = {str(e.get("cause")): int(e.get("count", 0)) for e in step.get("error_types") or []}
    db = {c: n for c, n in causes.items() if c in DB_CAUSES or "db" in c or "database" in c}
    if db:
        return {"resource": "PostgreSQL connections",
                "detail": ", ".join(f"{n} x {c}" for c, n in db.items())}
    pending = int(step.get("replies_pending") or 0)
    if pending:
        return {"resource": "the model server",
                "detail": f"{pending} chat turns answered 202 (reply not ready within the wait)"}
    if causes:
        top = max(causes, key=lambda c: causes[c])
        return {"resource": "errors", "detail": f"{causes[top]} x {top}"}
    return {"resource": "none saturated",
            "detail": f"p95 {step.get('p95_ms')} ms without a process or the host at its ceiling (host "
                      f"{'?' if busy is None else f'{100 * busy:.0f} %'} busy, shared with the load generator)"}


def pending_replies(routes: list[dict[str, Any]]) -> int:
    """Locust counts 202 as success; the locustfile names it in no stat, so this is 0 unless a route says."""
    return sum(int(r.get("pending", 0)) for r in routes)
