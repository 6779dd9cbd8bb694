"""`lab bench --capacity`: users stepped up, with the lab's quotas raised for the run only, until p95
passes the target or errors appear; names the first resource that saturated.

Why the quotas are raised: with them the answer is "the per-user limit" (what `lab bench` reports);
capacity asks what the host could serve. The raise, the restore and the lock are those of
`lab bench --layers` (bench_layers.quotas_raised, with the login limiter raised too: users log in
faster than 30 a minute here). Each step is the Locust step of `lab bench` (benchmarks/runner.py);
/proc is read at the ends of its measured window (after the ramp-up), so CPU figures are steady load.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labdef.errors import LabError

DEFAULT_STEPS = [10, 20, 40, 80, 160]
SPAWN_RATE = 2.0
"""Logins per second (the edge's login limiter is raised for the run; Keycloak hashes each password)."""


def _step(lab: Any, users: int, duration_s: int, *, host: str, ca: str | bool, creds: list[dict[str, str]],
          spawn_rate: float, think_s: tuple[float, float], profile_to: Path | None = None) -> dict[str, Any]:
    """One Locust step in a thread; /proc and /proc/stat read at the ends of its measured window, and with
    `profile_to` (a path prefix) py-spy samples the app and the worker over the same window."""
    from benchmarks import capacity, layers, profiles, runner

    box: dict[str, Any] = {}

    def go() -> None:
        try:
            box["step"] = runner.run_step(lab, users, duration_s, host=host, ca=ca, creds=creds,
                                          spawn_rate=spawn_rate, think_s=think_s)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
            box["error"] = exc

    t = threading.Thread(target=go, daemon=True)
    t0 = time.monotonic()
    t.start()
    time.sleep(math.ceil(users / spawn_rate) + runner.START_SLACK_S + 1)
    p0, h0, w0 = layers.read_procs(), capacity.read_host_cpu(), time.monotonic()
    window_end = t0 + math.ceil(users / spawn_rate) + runner.START_SLACK_S + duration_s - 1
    recordings = []
    if profile_to is not None:
        recordings = [profiles.start(g, pid, profile_to.with_name(f"{profile_to.name}.{users}users.{g}.pyspy.txt"),
                                     window_end - w0)
                      for g, pid in profiles.main_pids(p0).items()]
    time.sleep(max(0.0, window_end - time.monotonic()))
    p1, h1, w1 = layers.read_procs(), capacity.read_host_cpu(), time.monotonic()
    found = {r.group: r.finish() for r in recordings}
    t.join()
    if "error" in box:
        raise box["error"]
    step: dict[str, Any] = box["step"]
    procs = capacity.per_process_cores(p0, p1, w1 - w0)
    step["processes"] = procs[:8]
    step["group_cores"] = capacity.group_cores(procs)
    step["host_busy"] = round((h1[0] - h0[0]) / (h1[1] - h0[1]), 3) if h1[1] > h0[1] else None
    step["cpu_window_s"] = round(w1 - w0, 1)
    if profile_to is not None:
        step["profiles"] = {g: found.get(g, {"error": f"no {g} process found to profile"}) for g in profiles.PROFILED}
    return step


def _warm_up(lab: Any, turns: int = 3) -> None:
    """A few whole chat turns through the edge before the first step: the app and worker were just
    restarted (quotas raised), and a cold worker (model, provider breakers, pools) would make the first
    step measure the restart, not the load."""
    import ssl
    import uuid

    import httpx

    from labdef import status, tokens

    user = next(u.username for u in lab.users if "user" in u.roles)
    ctx = ssl.create_default_context(cafile=str(status.ca_cert_path(lab)))
    auth = {"Authorization": f"Bearer {tokens.get_access_token(lab, user)}"}
    with httpx.Client(base_url=lab.edge_url, verify=ctx, headers=auth, timeout=30) as c:
        conv = c.post("/api/v1/conversations", json={"title": "capacity warm-up"}).json()["id"]
        for _ in range(turns):
            c.post(f"/api/v1/conversations/{conv}/messages", json={"content": "Hello, how are you today?"},
                   headers={"Idempotency-Key": str(uuid.uuid4()), "Prefer": "wait=10"})


def run(lab: Any, steps: list[int], duration_s: int, *, think_s: tuple[float, float], spawn_rate: float = SPAWN_RATE,
        on_step: Callable[[dict[str, Any]], None] | None = None, profile_to: Path | None = None) -> dict[str, Any]:
    """The stepped run; with `profile_to`, every step's window is profiled (files `<prefix>.<N>users.<group>.pyspy.txt`)
    and the JSON's `profiles` is the last step's: the one at capacity (the steps stop at the first miss)."""
    from benchmarks import analysis, capacity, layers, runner
    from benchmarks.waf.live import provisioning_lock
    from seclab.commands.attack import _terminate_as_exit
    from seclab.commands.bench_layers import QUOTA_NOTE, QuotaCounters, quotas_raised

    creds = runner._credentials(lab)
    if not creds:
        raise LabError("lab.yml has no user with the `user` role: nobody can chat")
    perf = lab.performance
    ncpu = os.cpu_count() or 1
    done: list[dict[str, Any]] = []
    load_before = layers.loadavg()
    with _terminate_as_exit(), provisioning_lock(), quotas_raised(lab, counters=QuotaCounters(lab), logins=True):
        host, ca = runner.target_url(lab)
        _warm_up(lab)
        for users in steps:
            step = _step(lab, users, duration_s, host=host, ca=ca, creds=creds, spawn_rate=spawn_rate, think_s=think_s,
                         profile_to=profile_to)
            step["verdict"] = analysis.step_verdict(step, perf.p95_ms, perf.max_error_rate)
            step["meets_target"] = step["verdict"]["met"]
            step["saturated"] = capacity.saturated(step, ncpu)
            done.append(step)
            if on_step is not None:
                on_step(step)
            if not step["meets_target"]:
                break
    held = [s for s in done if s["meets_target"]]
    best = held[-1] if held else None  # the steps stop at the first miss: every held step came before it
    miss = next((s for s in done if not s["meets_target"]), None)
    return {
        "kind": "seclab-bench-capacity",
        "target": host,
        "p95_target_ms": perf.p95_ms,
        "max_error_rate": perf.max_error_rate,
        "spawn_rate": spawn_rate,
        "think_s": list(think_s),
        "quotas": QUOTA_NOTE + "; the edge's login limiter too",
        "accounts": [{"username": c["username"], "tenant": c["tenant"]} for c in creds],
        "steps_planned": steps,
        "steps": done,
        "capacity": {"users": best["users"] if best else None, "rps": best["rps"] if best else None,
                     "p95_ms": best["p95_ms"] if best else None},
        "saturated": miss["saturated"] if miss else {"resource": "not reached",
                                                     "detail": f"every step up to {steps[-1]} users met the target"},
        "ncpu": ncpu,
        "profiles": ({"users": done[-1]["users"], **done[-1].get("profiles", {})}
                     if profile_to is not None and done else None),
        "loadavg_before": load_before,
        "loadavg_after": layers.loadavg(),
        **analysis.summarise(done, p95_target_ms=perf.p95_ms, max_error_rate=perf.max_error_rate,
                             min_users=perf.min_users),
    }
