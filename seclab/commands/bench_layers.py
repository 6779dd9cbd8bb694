"""`lab bench --layers`: puts the running lab into each measured state in turn, and always back.

Why here (the CLI layer) and not in benchmarks/: measuring is black-box (benchmarks/layers.py), but
getting a path to measure changes the lab for the run, and every change is made and undone here:

- quotas: lab.yml's per-user and per-address rate limits and token budgets exist to stop one user
  from taking the lab; a closed-loop measurement of three accounts would only measure them. For the
  run, the deployed lab.json (read by the app and worker at start) and the edge's two limit_req
  zones are raised, the app and worker restarted, nginx reloaded; afterwards the files are written
  back byte for byte, the same restarts and reload done, and the Redis counters the run added
  (rate-limit windows, token budgets) are put back to what they were, so no account is left
  over a limit by the benchmark. The edge's login limiter and connection limit stay as deployed.
- WAF: "WAF off" renders SecRuleEngine Off (attack.py `edge_waf_mode`), the PL rows use
  benchmarks/waf/live.py `deployed_paranoia`; both restore the deployed files byte for byte.
- all of it under the provisioning lock (`deployed_paranoia`'s lock file), so neither `./lab up` nor
  another switch changes the lab mid-run; SIGTERM/SIGHUP end the run through the same `finally`s.
The guard stays on in every row: its share of the write comes from its own timing in the app's
metrics (`seclab_guard_duration_seconds`), never from switching it off.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks import layers
from labdef.errors import LabError

FIRST_PATH_WARMUP_S = 10.0
RAISED_RATE_PER_MINUTE = 1_000_000
RAISED_TOKENS_PER_HOUR = 1_000_000_000
EDGE_RAISED_RATE = "100000r/s"
EDGE_ZONES = ("address", "messages")
"""limit_req zones raised for every run; `edge_token` (logins) too only for --capacity, whose users log in
faster than 30 a minute (the layers run takes its tokens on loopback, past the edge)."""
QUOTA_KEY_PATTERNS = ("seclab:rl:*", "seclab:budget:*")
"""Redis keys of app/core/ratelimit.py (per-minute windows) and app/ai/budget.py (per-hour budgets)."""
QUOTA_NOTE = ("quotas raised for the run only (rate limits per user/address and token budgets in lab.json, the "
              "edge's per-address limit_req zones), then restored byte for byte with the Redis counters the run added")


# --- files changed for the run and always written back --------------------------------------------------

@contextmanager
def temporarily_written(changes: dict[Path, bytes], apply: Callable[[], None]) -> Iterator[None]:
    """Write `changes`, call `apply` (restart/reload), run the body; ALWAYS write the old bytes back and
    call `apply` again, even when writing, applying or the body failed."""
    snapshot = {p: p.read_bytes() for p in changes}
    try:
        for p, data in changes.items():
            p.write_bytes(data)
        apply()
        yield
    finally:
        for p, data in snapshot.items():
            p.write_bytes(data)
        apply()


def raised_lab_json(text: str) -> bytes:
    """lab.json (`{"lab": {...}}`) with rate limits and token budgets out of the way."""
    data = json.loads(text)
    lab = data["lab"]
    lab["limits"]["rate_limits"]["per_user_per_minute"] = RAISED_RATE_PER_MINUTE
    lab["limits"]["rate_limits"]["per_address_per_minute"] = RAISED_RATE_PER_MINUTE
    lab["ai"]["token_budget_per_user_per_hour"] = RAISED_TOKENS_PER_HOUR
    lab["ai"]["token_budget_per_tenant_per_hour"] = RAISED_TOKENS_PER_HOUR
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def raised_nginx_conf(text: str, logins: bool = False) -> bytes:
    """nginx.conf with the edge_address and edge_messages zones raised (and edge_token with `logins`)."""
    zones = (*EDGE_ZONES, "token") if logins else EDGE_ZONES
    zone_re = re.compile(rf"(limit_req_zone\s+\S+\s+zone=edge_(?:{'|'.join(zones)}):\S+\s+rate=)\d+r/[ms]")
    new, n = zone_re.subn(rf"\g<1>{EDGE_RAISED_RATE}", text)
    if n != len(zones):
        raise LabError(f"expected the limit_req zones {', '.join('edge_' + z for z in zones)} in nginx.conf, found {n}")
    return new.encode()


# --- Redis quota counters: snapshot and put back ---------------------------------------------------------

Snapshot = dict[str, tuple[bytes, int]]
"""key -> (value, milliseconds to live, -1 for none) when the snapshot was taken."""


def restore_plan(before: Snapshot, now_keys: set[str], elapsed_ms: int) -> tuple[dict[str, tuple[bytes, int]], list[str]]:
    """(keys to set back with their value and remaining ms (-1: no expiry), keys to delete).

    A key that existed before gets its value back with what was left of its life; one that would have
    expired meanwhile, or that the run created, is deleted (it would not exist had the run not been)."""
    sets: dict[str, tuple[bytes, int]] = {}
    for key, (value, ttl) in before.items():
        if ttl == -1:
            sets[key] = (value, -1)
        elif ttl - elapsed_ms > 0:
            sets[key] = (value, ttl - elapsed_ms)
    deletes = sorted(k for k in now_keys | set(before) if k not in sets)
    return sets, deletes


class QuotaCounters:
    """The app's Redis quota counters, read and put back as root with two of the lab's ACL users: the
    tenant admin (SCAN, DEL: finds keys) and the API's user (GET, PTTL, SET on seclab:*)."""

    def __init__(self, lab: Any) -> None:
        from app.core.config import load_settings

        secrets = Path(lab.paths.secrets)
        base = load_settings(Path(lab.paths.etc) / "app.env")
        self.admin = base.model_copy(update={"redis_user": "seclab_tenant_admin",
                                             "redis_password_file": str(secrets / "redis_tenant_admin_password")})
        self.app = base.model_copy(update={"redis_user": "seclab_app",
                                           "redis_password_file": str(secrets / "redis_app_password")})

    async def _clients(self) -> tuple[Any, Any]:
        from app.worker.runtime import redis_client

        return redis_client(self.admin), redis_client(self.app)

    async def _keys(self, admin: Any) -> set[str]:
        keys: set[str] = set()
        for pattern in QUOTA_KEY_PATTERNS:
            async for k in admin.scan_iter(match=pattern, count=500):
                keys.add(k.decode() if isinstance(k, bytes) else str(k))
        return keys

    async def snapshot(self) -> Snapshot:
        admin, app = await self._clients()
        try:
            out: Snapshot = {}
            for k in await self._keys(admin):
                value, ttl = await app.get(k), await app.pttl(k)
                if value is not None and ttl != -2:
                    out[k] = (value if isinstance(value, bytes) else str(value).encode(), int(ttl))
            return out
        finally:
            await admin.aclose()
            await app.aclose()

    async def restore(self, before: Snapshot, elapsed_ms: int) -> dict[str, int]:
        admin, app = await self._clients()
        try:
            sets, deletes = restore_plan(before, await self._keys(admin), elapsed_ms)
            for k, (value, ttl) in sets.items():
                await (app.set(k, value) if ttl == -1 else app.set(k, value, px=ttl))
            for k in deletes:
                await admin.delete(k)
            return {"restored": len(sets), "deleted": len(deletes)}
        finally:
            await admin.aclose()
            await app.aclose()


@contextmanager
def counters_kept(counters: Any) -> Iterator[None]:
    """Snapshot the quota counters; ALWAYS put them back after the body."""
    before = asyncio.run(counters.snapshot())
    t0 = time.monotonic()
    try:
        yield
    finally:
        asyncio.run(counters.restore(before, int(1000 * (time.monotonic() - t0))))


# --- the lab's processes -------------------------------------------------------------------------------

def app_context(lab: Any) -> ssl.SSLContext:
    """Talk to the app as the edge does: lab CA + the edge's client certificate (status.py)."""
    from labdef import status

    try:
        return status.app_mtls_context(lab)
    except (OSError, ssl.SSLError) as exc:
        raise LabError(f"cannot load the edge's client certificate ({exc}): run as root on a provisioned lab") from None


def app_url(lab: Any) -> str:
    return f"https://127.0.0.1:{lab.ports.app}"


def wait_healthy(lab: Any, timeout_s: float = 180.0) -> None:
    """Until the app answers /readyz over mTLS (after a restart: imports, pools, the guard's model)."""
    ctx = app_context(lab)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{app_url(lab)}/readyz", verify=ctx, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise LabError(f"the app did not become ready within {timeout_s:g} s after a restart")


def restart_services(lab: Any) -> None:
    """Restart the processes that read lab.json at start (app role: `process_restart` on a changed
    lab.json; the worker's gateway holds the budgets), reload the edge, and wait for the app."""
    from attacks.edge_waf import reload_edge
    from seclab.commands.model import restart_server

    for name in ("app", "worker"):
        restart_server(name)
    reload_edge()
    wait_healthy(lab)


@contextmanager
def quotas_raised(lab: Any, nginx_conf: Path | None = None, apply: Callable[[], None] | None = None,
                  counters: Any = None, logins: bool = False) -> Iterator[None]:
    """The lab with its quotas out of the way for the body; as found afterwards (files, processes, counters)."""
    from attacks.edge_waf import NGINX_CONF

    lab_json = Path(lab.paths.etc) / "lab.json"
    conf = nginx_conf or NGINX_CONF
    changes = {lab_json: raised_lab_json(lab_json.read_text(encoding="utf-8")),
               conf: raised_nginx_conf(conf.read_text(encoding="utf-8"), logins=logins)}
    kept = counters_kept(counters) if counters is not None else nullcontext()
    with kept, temporarily_written(changes, apply or (lambda: restart_services(lab))):
        yield


# --- the paths -----------------------------------------------------------------------------------------

@dataclass
class LayerPath:
    """One row: a label, where requests go, how to verify it, and the switch that puts the lab in it."""

    label: str
    base_url: str
    verify: ssl.SSLContext | str | bool
    switch: Callable[[], AbstractContextManager[Any]]


def plan(lab: Any) -> list[LayerPath]:
    """The four cumulative paths, bare app first (the issue's order)."""
    from benchmarks.waf.live import deployed_paranoia
    from labdef import status
    from seclab.commands.attack import edge_waf_mode

    ca = ssl.create_default_context(cafile=str(status.ca_cert_path(lab)))
    edge = lab.edge_url.rstrip("/")
    return [
        LayerPath("app direct (mTLS, loopback)", app_url(lab), app_context(lab), nullcontext),
        LayerPath("edge TLS, WAF off", edge, ca, lambda: edge_waf_mode(lab, "off")),
        LayerPath("edge TLS + WAF PL1", edge, ca, lambda: deployed_paranoia(lab, 1)),
        LayerPath("edge TLS + WAF PL2", edge, ca, lambda: deployed_paranoia(lab, 2)),
    ]


Measure = Callable[[LayerPath, str], layers.Measured]


def measure_paths(paths: list[LayerPath], measure: Measure, *, lock: Callable[[], AbstractContextManager[Any]],
                  quotas: Callable[[], AbstractContextManager[Any]],
                  on_row: Callable[[str, layers.Measured], None] | None = None,
                  ) -> tuple[list[layers.Measured], list[layers.Measured]]:
    """Every path in order, read then write, each inside its switch, all inside the lock and raised
    quotas; whatever fails, every switch entered is left (restored) before the error propagates."""
    read: list[layers.Measured] = []
    write: list[layers.Measured] = []
    with ExitStack() as stack:
        stack.enter_context(lock())
        stack.enter_context(quotas())
        for p in paths:
            with p.switch():
                for op, into in (("read", read), ("write", write)):
                    m = measure(p, op)
                    into.append(m)
                    if on_row is not None:
                        on_row(op, m)
    return read, write


def _guard_scrapes(lab: Any, n: int = 12) -> list[layers.Scrape]:
    """`n` scrapes of the app's /metrics on fresh connections (each lands on one uvicorn worker; with
    two workers, 12 miss one with a chance of 1 in 2048)."""
    out: list[layers.Scrape] = []
    ctx = app_context(lab)
    for _ in range(n):
        try:
            with httpx.Client(verify=ctx, timeout=5, limits=httpx.Limits(max_keepalive_connections=0)) as c:
                out.append(layers.guard_by_process(c.get(f"{app_url(lab)}/metrics").text))
        except httpx.HTTPError:
            continue
    return out


def live_measure(lab: Any, users: list[str], *, concurrency: int, warmup_s: float, duration_s: float) -> Measure:
    """Measure one op along one path against the running lab (one conversation per account and path).

    Token sources are made per measurement: each measurement is its own event loop, and an asyncio
    lock (TokenSource's) must not outlive the loop it was used in."""
    from benchmarks.waf.live import TokenSource

    conversations: dict[tuple[str, str], str] = {}
    first: list[str] = []

    def measure(p: LayerPath, op: str) -> layers.Measured:
        # The first path runs right after the app and worker restarted (quotas raised): their caches,
        # pools and the worker's model are cold, so its warm-up is longer (the rows must compare layers).
        if not first:
            first.append(p.label)
        warm = max(warmup_s, FIRST_PATH_WARMUP_S) if p.label == first[0] else warmup_s

        async def go() -> layers.Measured:
            accounts = [layers.Account(u, TokenSource(lab, u).bearer, conversations.get((p.label, u), ""))
                        for u in users]
            limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
            async with httpx.AsyncClient(base_url=p.base_url, verify=p.verify, timeout=60, limits=limits) as client:
                if not all(a.conversation for a in accounts):
                    await layers.create_conversations(client, accounts)
                    conversations.update({(p.label, a.name): a.conversation for a in accounts})
                for a in accounts:
                    await a.bearer()  # tokens fetched before the clock starts
                return await layers.drive(client, op, accounts, path=p.label, concurrency=concurrency,
                                          warmup_s=warm, duration_s=duration_s)

        before = _guard_scrapes(lab) if op == "write" else []
        m = asyncio.run(go())
        if op == "write":
            secs, n = layers.guard_delta(before, _guard_scrapes(lab))
            m.extra["guard"] = layers.guard_share(secs, n, m.latencies_ms)
        return m

    return measure


def run(lab: Any, *, concurrency: int = 8, warmup_s: float = 3.0, duration_s: float = 20.0,
        on_row: Callable[[str, layers.Measured], None] | None = None) -> dict[str, Any]:
    """The whole layers run against the running lab; the JSON of `--json`."""
    from benchmarks.waf.live import provisioning_lock
    from seclab.commands.attack import _terminate_as_exit

    users = [u.username for u in lab.users if "user" in u.roles]
    if not users:
        raise LabError("lab.yml has no user with the `user` role: nobody can chat")
    load_before = layers.loadavg()
    started = layers.walltime()
    with _terminate_as_exit():
        read, write = measure_paths(
            plan(lab), live_measure(lab, users, concurrency=concurrency, warmup_s=warmup_s, duration_s=duration_s),
            lock=provisioning_lock, quotas=lambda: quotas_raised(lab, counters=QuotaCounters(lab)), on_row=on_row)
    meta = {"started": started, "finished": layers.walltime(), "concurrency": concurrency, "warmup_s": warmup_s,
            "first_path_warmup_s": max(warmup_s, FIRST_PATH_WARMUP_S),
            "duration_s": duration_s, "accounts": users, "loadavg_before": load_before,
            "loadavg_after": layers.loadavg(), "quotas": QUOTA_NOTE,
            "read": "GET /api/v1/conversations?limit=20 (200)",
            "write": f"POST /api/v1/conversations/{{id}}/messages, Prefer: wait={layers.WRITE_WAIT_S} (201: reply in)",
            "waf_off": "SecRuleEngine Off (ModSecurity loaded, no rule evaluated)",
            "cpu": "utime+stime(+reaped children) per process group from /proc, measured window only",
            "load_generator": "this process (httpx, asyncio), on the same host: its CPU is not in the groups"}
    return layers.result(read, write, meta)
