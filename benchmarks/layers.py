"""`lab bench --layers`: what each defence layer costs, measured black-box over HTTP along cumulative paths.

Why cumulative paths on one host: the difference between two rows is the layer added between them (TLS
at the edge, the WAF at PL1, PL2), measured with the same requests, the same accounts, the same
concurrency and duration, started the same way. Why CPU from /proc: requests/s and latency say what a
user sees; CPU seconds per request of each process group say who paid for it, which is what decides
capacity on a 2-core host. This module holds the measuring (load, percentiles, CPU accounting, rows,
the JSON shape); switching the lab between paths is the CLI's job (seclab/commands/bench_layers.py).

Closed loop: `concurrency` workers each send the next request as soon as the previous one answered,
for `warmup_s` (not counted) and then `duration_s` (measured). The read is GET /api/v1/conversations;
the write is a message POST that waits (RFC 7240 `Prefer: wait`) for the worker's reply, so it spans
app, guard, PostgreSQL, Redis, the worker and the model server.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

TICK = os.sysconf("SC_CLK_TCK")
GROUPS = ("nginx", "app", "worker", "postgres", "redis", "keycloak", "model")
"""Process groups CPU is reported for: the edge, the API, the Celery worker, PostgreSQL, Redis, the
identity provider (Keycloak's JVM) and the local model server (llama.cpp)."""
ROW_KEYS = ("path", "rps", "p50_ms", "p95_ms", "p99_ms", "cpu_s_per_request", "ratio")
"""The issue's ROW, in order: `{"read": [ROW, ...], "write": [ROW, ...]}`."""
OPS = ("read", "write")
WRITE_WAIT_S = 10
"""`Prefer: wait=10`: the app holds the answer up to 10 s for the reply (then 202, reply pending)."""
PROMPTS = (
    "Summarise the difference between TCP and UDP in two sentences.",
    "What is a good name for a cat that likes boxes?",
    "How do I list the files in a directory with Python?",
)


# --- CPU accounting from /proc ------------------------------------------------------------------------

@dataclass(frozen=True)
class Proc:
    """One process at one instant: identity (pid + start time, so a reused pid is another process),
    parent, names, and CPU ticks of itself plus its reaped children (utime+stime+cutime+cstime)."""

    pid: int
    start: int
    ppid: int
    comm: str
    cmdline: str
    ticks: int
    own: int = 0
    """utime+stime of the process alone (benchmarks/capacity.py: is one process at a full core?)."""


def parse_stat(pid: int, stat: str, cmdline: str) -> Proc:
    """/proc/<pid>/stat text -> Proc (fields after the `(comm)`, which may itself hold spaces)."""
    head, tail = stat.rsplit(")", 1)
    comm = head.split("(", 1)[1]
    f = tail.split()
    # f[0] is field 3 (state): ppid 4, utime 14, stime 15, cutime 16, cstime 17, starttime 22.
    return Proc(pid=pid, start=int(f[19]), ppid=int(f[1]), comm=comm, cmdline=cmdline,
                ticks=int(f[11]) + int(f[12]) + int(f[13]) + int(f[14]), own=int(f[11]) + int(f[12]))


def read_procs(root: Path = Path("/proc")) -> dict[int, Proc]:
    """Every process visible now (one vanishing while read is simply left out)."""
    procs: dict[int, Proc] = {}
    for d in root.iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmdline = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        procs[int(d.name)] = parse_stat(int(d.name), stat, cmdline)
    return procs


def root_group(p: Proc) -> str | None:
    """The group a process starts by its own names (its children inherit it: see `assign_groups`)."""
    cmd = p.cmdline
    if p.comm == "nginx":
        return "nginx"
    if "uvicorn" in cmd and "app.main:app" in cmd:
        return "app"
    if "celery" in cmd and " worker" in cmd and "flower" not in cmd:
        return "worker"
    if p.comm == "postgres" or p.comm.startswith("postgres:"):
        return "postgres"
    if p.comm.startswith("redis-server"):
        return "redis"
    if p.comm == "java" and ("keycloak" in cmd or "kc.home.dir" in cmd):
        return "keycloak"
    if "llama_cpp.server" in cmd:
        return "model"
    return None


def assign_groups(procs: dict[int, Proc]) -> dict[int, str]:
    """pid -> group: a process's own group, else its nearest grouped ancestor's (uvicorn's workers are
    spawned `python -c ...` processes; Celery's pool children are forks), else none."""
    out: dict[int, str] = {}
    for pid in procs:
        seen: list[int] = []
        cur: int | None = pid
        group = None
        while cur is not None and cur in procs and cur not in seen:
            if cur in out:
                group = out[cur]
                break
            group = root_group(procs[cur])
            if group:
                break
            seen.append(cur)
            cur = procs[cur].ppid
        if group:
            out[pid] = group
    return out


def group_ticks(procs: dict[int, Proc]) -> dict[str, int]:
    """Ticks per group. Summing utime+stime+cutime+cstime of the live members counts each finished
    process exactly once, in the member that reaped it (a PostgreSQL backend in the postmaster, an old
    nginx worker in the master), so a difference of two snapshots is the group's CPU in between."""
    groups = assign_groups(procs)
    totals = dict.fromkeys(GROUPS, 0)
    for pid, g in groups.items():
        totals[g] += procs[pid].ticks
    return totals


def cpu_seconds(before: dict[int, Proc], after: dict[int, Proc], tick: int = TICK) -> dict[str, float]:
    """CPU seconds each group used between two snapshots (never negative: a group restarted in between,
    whose reaper is outside it, would otherwise lose its past and show less than nothing)."""
    b, a = group_ticks(before), group_ticks(after)
    return {g: max(0, a[g] - b[g]) / tick for g in GROUPS}


# --- latency and rows -----------------------------------------------------------------------------------

def percentile(sorted_ms: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for no samples)."""
    if not sorted_ms:
        return 0.0
    k = max(1, math.ceil(q / 100 * len(sorted_ms)))
    return sorted_ms[min(k, len(sorted_ms)) - 1]


@dataclass
class Measured:
    """One op along one path: latencies (ms) of requests answered as expected inside the window,
    statuses of everything that finished in it, the window's length and the CPU used meanwhile."""

    path: str
    latencies_ms: list[float]
    statuses: dict[str, int]
    seconds: float
    cpu_s: dict[str, float]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> int:
        return len(self.latencies_ms)

    @property
    def errors(self) -> int:
        return sum(self.statuses.values()) - self.ok


def row(m: Measured, base_rps: float | None) -> dict[str, Any]:
    """The issue's ROW for one measurement; `ratio` is requests/s relative to the first row (the bare app)."""
    lat = sorted(m.latencies_ms)
    rps = m.ok / m.seconds if m.seconds > 0 else 0.0
    per_req = {g: round(s / m.ok, 6) if m.ok else None for g, s in m.cpu_s.items()}
    ratio = round(rps / base_rps, 3) if base_rps else None
    return {"path": m.path, "rps": round(rps, 2), "p50_ms": round(percentile(lat, 50), 1),
            "p95_ms": round(percentile(lat, 95), 1), "p99_ms": round(percentile(lat, 99), 1),
            "cpu_s_per_request": per_req, "ratio": ratio}


def rows(measured: list[Measured]) -> list[dict[str, Any]]:
    """Rows in path order, each with its ratio to the first (the first row's ratio is 1.0)."""
    out: list[dict[str, Any]] = []
    for m in measured:
        out.append(row(m, out[0]["rps"] if out else None))
    if out:
        out[0]["ratio"] = 1.0
    return out


def result(read: list[Measured], write: list[Measured], meta: dict[str, Any]) -> dict[str, Any]:
    """The JSON `--json FILE` writes: the issue's `{"read": [...], "write": [...]}`, plus `run` (how it
    was measured, per-row statuses, load average) and `guard` (its share of the write, from its timing)."""
    run = dict(meta)
    run["statuses"] = {op: {m.path: m.statuses for m in ms} for op, ms in (("read", read), ("write", write))}
    guard = {m.path: m.extra["guard"] for m in write if "guard" in m.extra}
    return {"kind": "seclab-bench-layers", "read": rows(read), "write": rows(write), "guard": guard, "run": run}


def check_shape(data: dict[str, Any]) -> None:
    """Raise ValueError unless `data` has the issue's shape (what `lab report --bench` relies on)."""
    for op in OPS:
        rs = data.get(op)
        if not isinstance(rs, list) or not rs:
            raise ValueError(f"layers JSON: {op!r} must be a non-empty list of rows")
        for r in rs:
            if not isinstance(r, dict) or tuple(r) != ROW_KEYS:
                raise ValueError(f"layers JSON: a {op} row must have exactly the keys {', '.join(ROW_KEYS)}")
            if not isinstance(r["cpu_s_per_request"], dict):
                raise ValueError(f"layers JSON: {op} row {r['path']!r}: cpu_s_per_request must map group -> s")  # noqa: TRY004 - bad input file, one error type for the report
        if rs[0]["ratio"] != 1.0:
            raise ValueError(f"layers JSON: the first {op} row (the bare app) must have ratio 1.0")


# --- the guard's own timing (app metrics) -------------------------------------------------------------

GUARD_METRIC = "seclab_guard_duration_seconds"


def guard_by_process(metrics_text: str) -> tuple[float | None, tuple[float, float]]:
    """(process start time, (guard seconds sum, count)) from one /metrics answer. Each uvicorn worker
    keeps its own registry; its start time tells the workers apart across scrapes."""
    from prometheus_client.parser import text_string_to_metric_families

    start, total, count = None, 0.0, 0.0
    for fam in text_string_to_metric_families(metrics_text):
        for s in fam.samples:
            if s.name == "process_start_time_seconds":
                start = s.value
            elif s.name == f"{GUARD_METRIC}_sum":
                total = s.value
            elif s.name == f"{GUARD_METRIC}_count":
                count = s.value
    return start, (total, count)


Scrape = tuple[float | None, tuple[float, float]]
"""One /metrics answer: (process start time, (guard seconds sum, count))."""


def guard_totals(scrapes: Sequence[Scrape]) -> tuple[float, float]:
    """(sum, count) over the app's workers from scrapes taken while no message is screened: each worker
    answers with the same values every time, so distinct answers are distinct workers. The start time
    alone cannot tell uvicorn's workers apart: they start within the same clock tick."""
    seen = {(start, values) for start, values in scrapes}
    return sum(v[0] for _, v in seen), sum(v[1] for _, v in seen)


def guard_delta(before: Sequence[Scrape], after: Sequence[Scrape]) -> tuple[float, int]:
    """(guard seconds, messages) screened between two quiet moments; (0, 0) when fewer workers with
    screened messages answered afterwards or the totals went back (a worker missed or restarted)."""
    (s0, c0), (s1, c1) = guard_totals(before), guard_totals(after)
    # Workers that screened nothing yet look alike (0, 0) and merge: harmless for the totals; only a
    # worker that had screened something and is gone afterwards (missed, restarted) spoils the delta.
    busy0, busy1 = ({x for x in scr if x[1][1] > 0} for scr in (before, after))
    if len(busy1) < len(busy0) or c1 < c0 or s1 < s0:
        return 0.0, 0
    return s1 - s0, int(c1 - c0)


def guard_share(guard_s: float, messages: int, write_latencies_ms: list[float]) -> dict[str, Any]:
    """The guard's mean time per message and its share of the mean write (a chat turn, reply included)."""
    if not messages or not write_latencies_ms:
        return {"messages": messages, "mean_ms": None, "share_of_write": None}
    mean_ms = 1000 * guard_s / messages
    write_mean = sum(write_latencies_ms) / len(write_latencies_ms)
    return {"messages": messages, "mean_ms": round(mean_ms, 3), "share_of_write": round(mean_ms / write_mean, 4)}


# --- load ------------------------------------------------------------------------------------------

Bearer = Callable[[], Awaitable[str]]


@dataclass
class Account:
    """A lab chat account as a worker uses it: its token source and its own conversation."""

    name: str
    bearer: Bearer
    conversation: str = ""


async def create_conversations(client: httpx.AsyncClient, accounts: list[Account]) -> None:
    for a in accounts:
        r = await client.post("/api/v1/conversations", json={"title": "bench-layers"},
                              headers={"Authorization": f"Bearer {await a.bearer()}"})
        if r.status_code != 201:
            raise RuntimeError(f"creating a conversation as {a.name} via {client.base_url} answered {r.status_code}: "
                               f"{r.text[:200]}")
        a.conversation = r.json()["id"]


async def send(client: httpx.AsyncClient, op: str, account: Account) -> int:
    """One request of `op`; the HTTP status (0: no answer)."""
    headers = {"Authorization": f"Bearer {await account.bearer()}"}
    try:
        if op == "read":
            r = await client.get("/api/v1/conversations", params={"limit": 20}, headers=headers)
        else:
            headers |= {"Idempotency-Key": str(uuid.uuid4()), "Prefer": f"wait={WRITE_WAIT_S}"}
            prompt = PROMPTS[uuid.uuid4().int % len(PROMPTS)]
            r = await client.post(f"/api/v1/conversations/{account.conversation}/messages",
                                  json={"content": prompt}, headers=headers)
    except httpx.HTTPError:
        return 0
    return r.status_code


EXPECTED = {"read": (200,), "write": (201,)}
"""A write counts when the reply came within the wait (201); a 202 (reply still pending) is reported
among the statuses, not timed: its latency would not be a whole chat turn."""


async def drive(client: httpx.AsyncClient, op: str, accounts: list[Account], *, path: str, concurrency: int,
                warmup_s: float, duration_s: float, snapshot: Callable[[], Any] = read_procs,
                cpu: Callable[[Any, Any], dict[str, float]] = cpu_seconds) -> Measured:
    """Closed loop: `concurrency` workers (accounts round-robin) send `op` for warmup + duration; requests
    that finish inside the measured window are counted (throughput = completions per second, as a
    server sees it; a slow write begun in the warm-up still counts), and CPU is snapshotted at its ends."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    start, end = t0 + warmup_s, t0 + warmup_s + duration_s
    lat: list[float] = []
    statuses: dict[str, int] = {}
    snaps: dict[str, Any] = {}

    async def worker(i: int) -> None:
        account = accounts[i % len(accounts)]
        while loop.time() < end:
            s = loop.time()
            status = await send(client, op, account)
            f = loop.time()
            if start <= f <= end:
                statuses[str(status)] = statuses.get(str(status), 0) + 1
                if status in EXPECTED[op]:
                    lat.append(1000 * (f - s))

    async def clock() -> None:
        await asyncio.sleep(max(0.0, start - loop.time()))
        snaps["before"] = snapshot()
        await asyncio.sleep(max(0.0, end - loop.time()))
        snaps["after"] = snapshot()

    await asyncio.gather(clock(), *(worker(i) for i in range(concurrency)))
    return Measured(path=path, latencies_ms=lat, statuses=statuses, seconds=duration_s,
                    cpu_s=cpu(snaps["before"], snaps["after"]))


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def walltime() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def table_lines(data: dict[str, Any], groups: Iterable[str] = GROUPS) -> list[str]:
    """The layer table as text (the CLI prints it; the report has its own HTML)."""
    gs = list(groups)
    head = ["op", "path", "req/s", "p50", "p95", "p99", "ratio", *[f"{g} ms" for g in gs]]
    cells = [head]
    for op in OPS:
        for r in data[op]:
            cpu = r["cpu_s_per_request"]
            cells.append([op, r["path"], f"{r['rps']:g}", f"{r['p50_ms']:g}", f"{r['p95_ms']:g}", f"{r['p99_ms']:g}",
                          "-" if r["ratio"] is None else f"{r['ratio']:g}",
                          *["-" if cpu.get(g) is None else f"{1000 * cpu[g]:.2f}" for g in gs]])
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    return ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
            for r in cells]
