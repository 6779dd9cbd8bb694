"""Runs Locust headless for `lab bench`, one step per user count, and reduces its CSVs to the summary.

Each step is its own Locust process: users are spawned at `spawn_rate` (each logs in), then the stats
are reset once every session has started (locustfile.py) and `duration_s` of steady load at that
user count is measured. The
default spawn rate stays under the edge's login limiter (30 logins per minute per address), so the
ramp measures logins, not the limiter. Steps run in increasing order and stop after the first step
that misses the target (unless told to go on): beyond it the lab is saturated.

Step keys: users, duration_s, ramp_s, requests, rps, p50_ms, p95_ms, p99_ms, errors, error_types
(classified by benchmarks/analysis.py), sessions, routes, verdict. The run adds max_users and
limited_by; `lab report --bench FILE` reads both.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from itertools import pairwise, zip_longest
from pathlib import Path
from typing import Any

from benchmarks import analysis
from labdef import LabDefinition, tokens
from labdef.errors import LabError

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
DEFAULT_SPAWN_RATE = 0.4
"""Users started per second: 24 logins a minute, under the edge's edge_token_rate_per_minute (30)."""
DEFAULT_THINK_S = (5.0, 15.0)
START_SLACK_S = 3
"""Seconds for the last session's login after the last spawn, before the measured window starts."""


def _num(v: str | None) -> float:
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


def parse_users(spec: str) -> list[int]:
    """`5,10,20` -> [5, 10, 20]; increasing positive integers (a single `5` is one step)."""
    try:
        steps = [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise LabError(f"--users must be a comma-separated list of integers, not {spec!r}") from None
    if not steps or any(n < 1 for n in steps) or any(b <= a for a, b in pairwise(steps)):
        raise LabError(f"--users must be positive and strictly increasing, not {spec!r}")
    return steps


def target_url(lab: LabDefinition) -> tuple[str, str | bool]:
    """Through the edge when it is provisioned (real path of users), else straight to the app."""
    from labdef import status

    st = status.collect(lab)
    edge = st["services"].get("edge")
    if edge and edge["up"]:
        return st["edge"]["url"], st["edge"]["ca_cert"]
    return f"http://127.0.0.1:{lab.ports.app}", False


def token_url(lab: LabDefinition, host: str) -> str:
    """Log in where users do: through the edge (and its login limiter) when the target is the edge."""
    if host.startswith("https://"):
        return f"{host}/realms/{lab.identity.realm}/protocol/openid-connect/token"
    return tokens.token_endpoint(lab)


def parse_stats(csv_path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Locust's `<prefix>_stats.csv` -> (aggregate row, per-route rows)."""
    rows = list(csv.DictReader(csv_path.open()))
    agg = next((r for r in rows if r["Name"] == "Aggregated"), None)
    if agg is None:
        raise LabError(f"locust wrote no aggregate row in {csv_path}")
    routes = [
        {
            "name": r["Name"],
            "requests": int(_num(r["Request Count"])),
            "failures": int(_num(r["Failure Count"])),
            "p50_ms": _num(r["50%"]),
            "p95_ms": _num(r["95%"]),
            "p99_ms": _num(r["99%"]),
        }
        for r in rows
        if r["Name"] != "Aggregated" and _num(r["Request Count"]) > 0
    ]
    return agg, routes


def parse_failures(csv_path: Path) -> list[dict[str, Any]]:
    """Locust's `<prefix>_failures.csv` -> [{name, error, count}] (empty when the file is absent)."""
    if not csv_path.exists():
        return []
    return [{"name": r["Name"], "error": r["Error"], "count": int(_num(r["Occurrences"]))}
            for r in csv.DictReader(csv_path.open())]


def step_summary(agg: dict[str, Any], routes: list[dict[str, Any]], failures: list[dict[str, Any]],
                 sessions: dict[str, Any], *, users: int, duration_s: int, ramp_s: int) -> dict[str, Any]:
    """One step's numbers; login/start failures from the sessions file count as errors too."""
    start = [{"name": k.split(": ", 1)[0], "error": k.split(": ", 1)[-1], "count": v}
             for k, v in (sessions.get("start_failures") or {}).items()]
    login_failures = sum(f["count"] for f in start)
    errors = int(_num(agg["Failure Count"])) + login_failures
    return {
        "users": users,
        "duration_s": duration_s,
        "ramp_s": ramp_s,
        "requests": int(_num(agg["Request Count"])),
        "rps": round(_num(agg["Requests/s"]), 2),
        "p50_ms": _num(agg["50%"]),
        "p95_ms": _num(agg["95%"]),
        "p99_ms": _num(agg["99%"]),
        "errors": errors,
        "login_failures": login_failures,
        "error_types": analysis.error_groups(failures + start),
        "sessions": {k: sessions.get(k) for k in ("started", "logged_in", "active", "relogins")},
        "routes": routes,
    }


def _credentials(lab: LabDefinition) -> list[dict[str, str]]:
    """Every lab account with the chat role, interleaved by tenant so sessions spread over tenants too."""
    chat = [u for u in lab.users if "user" in u.roles]
    by_tenant: dict[str, list[Any]] = {}
    for u in chat:
        by_tenant.setdefault(u.tenant or "", []).append(u)
    order = [u for group in zip_longest(*by_tenant.values()) for u in group if u is not None]
    return [{"username": u.username, "password": tokens.user_password(lab, u.username), "tenant": u.tenant or ""}
            for u in order]


def run_step(lab: LabDefinition, users: int, duration_s: int, *, host: str, ca: str | bool,
             creds: list[dict[str, str]], spawn_rate: float = DEFAULT_SPAWN_RATE,
             think_s: tuple[float, float] = DEFAULT_THINK_S) -> dict[str, Any]:
    """One Locust process: ramp `users` up, reset the stats, measure `duration_s` seconds."""
    ramp_s = math.ceil(users / spawn_rate)
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="seclab-bench-") as tmp:
        prefix = Path(tmp) / "run"
        sessions_file = Path(tmp) / "sessions.json"
        env.update(
            SECLAB_BENCH_USERS=json.dumps(creds),
            SECLAB_BENCH_TOKEN_URL=token_url(lab, host),
            SECLAB_BENCH_CLIENT_ID=lab.identity.cli_client_id,
            SECLAB_BENCH_CA=str(ca) if ca else "",
            SECLAB_BENCH_SESSIONS_FILE=str(sessions_file),
            SECLAB_BENCH_THINK_S=f"{think_s[0]},{think_s[1]}",
        )
        cmd = [
            sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
            "-u", str(users), "-r", str(spawn_rate), "-t", f"{ramp_s + START_SLACK_S + duration_s}s",
            "--host", host, "--csv", str(prefix), "--stop-timeout", "15", "--loglevel", "WARNING",
        ]
        timeout = ramp_s + duration_s + 180
        proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=timeout)
        stats = Path(f"{prefix}_stats.csv")
        if not stats.exists():
            raise LabError(f"locust failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
        agg, routes = parse_stats(stats)
        failures = parse_failures(Path(f"{prefix}_failures.csv"))
        sessions = json.loads(sessions_file.read_text()) if sessions_file.exists() else {}
    return step_summary(agg, routes, failures, sessions, users=users, duration_s=duration_s, ramp_s=ramp_s)


def run(lab: LabDefinition, steps: list[int], duration_s: int, *, spawn_rate: float = DEFAULT_SPAWN_RATE,
        think_s: tuple[float, float] = DEFAULT_THINK_S, keep_going: bool = False,
        on_step: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Every step in order (stopping after the first miss unless keep_going), then the conclusion."""
    host, ca = target_url(lab)
    creds = _credentials(lab)
    if not creds:
        raise LabError("lab.yml has no user with the `user` role: nobody can chat")
    perf = lab.performance
    done: list[dict[str, Any]] = []
    for users in steps:
        step = run_step(lab, users, duration_s, host=host, ca=ca, creds=creds, spawn_rate=spawn_rate, think_s=think_s)
        step["verdict"] = analysis.step_verdict(step, perf.p95_ms, perf.max_error_rate)
        step["meets_target"] = step["verdict"]["met"]
        done.append(step)
        if on_step is not None:
            on_step(step)
        if not step["meets_target"] and not keep_going:
            break
    accounts = sorted({(c["username"], c["tenant"]) for c in creds})
    return {
        "kind": "seclab-bench-steps",
        "target": host,
        "p95_target_ms": perf.p95_ms,
        "max_error_rate": perf.max_error_rate,
        "spawn_rate": spawn_rate,
        "think_s": list(think_s),
        "accounts": [{"username": u, "tenant": t} for u, t in accounts],
        "steps_planned": steps,
        "steps": done,
        **analysis.summarise(done, p95_target_ms=perf.p95_ms, max_error_rate=perf.max_error_rate,
                             min_users=perf.min_users),
    }
