"""Runs Locust headless for `lab bench` and reduces its CSV to the summary the issue defines.

Summary keys: users, duration_s, requests, rps, p50_ms, p95_ms, p99_ms, errors (+ per-route rows and
the lab's p95 target so a reader sees pass/fail without another file).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from seclab import tokens
from seclab.errors import LabError
from seclab.labdef import LabDefinition

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"


def _num(v: str) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return 0.0


def target_url(lab: LabDefinition) -> tuple[str, str | bool]:
    """Through the edge when it is provisioned (real path of users), else straight to the app."""
    from seclab import status

    st = status.collect(lab)
    edge = st["services"].get("edge")
    if edge and edge["up"]:
        return st["edge"]["url"], st["edge"]["ca_cert"]
    return f"http://127.0.0.1:{lab.ports.app}", False


def parse_stats(csv_path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
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
        if r["Name"] != "Aggregated"
    ]
    return agg, routes


def run(lab: LabDefinition, users: int, duration_s: int, spawn_rate: float = 5.0) -> dict[str, Any]:
    host, ca = target_url(lab)
    chat_users = [u for u in lab.users if "user" in u.roles]
    creds = [{"username": u.username, "password": tokens.user_password(lab, u.username)} for u in chat_users]
    env = dict(os.environ)
    env.update(
        SECLAB_BENCH_USERS=json.dumps(creds),
        SECLAB_BENCH_TOKEN_URL=tokens.token_endpoint(lab),
        SECLAB_BENCH_CLIENT_ID=lab.identity.cli_client_id,
        SECLAB_BENCH_CA=str(ca) if ca else "",
    )
    with tempfile.TemporaryDirectory(prefix="seclab-bench-") as tmp:
        prefix = Path(tmp) / "run"
        cmd = [
            sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
            "-u", str(users), "-r", str(spawn_rate), "-t", f"{duration_s}s", "--host", host,
            "--csv", str(prefix), "--stop-timeout", "5", "--loglevel", "WARNING",
        ]
        proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=duration_s + 120)
        stats = Path(f"{prefix}_stats.csv")
        if not stats.exists():
            raise LabError(f"locust failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
        agg, routes = parse_stats(stats)
    requests = int(_num(agg["Request Count"]))
    errors = int(_num(agg["Failure Count"]))
    return {
        "users": users,
        "duration_s": duration_s,
        "target": host,
        "requests": requests,
        "rps": round(_num(agg["Requests/s"]), 2),
        "p50_ms": _num(agg["50%"]),
        "p95_ms": _num(agg["95%"]),
        "p99_ms": _num(agg["99%"]),
        "errors": errors,
        "p95_target_ms": lab.performance.p95_ms,
        "meets_target": errors == 0 and _num(agg["95%"]) <= lab.performance.p95_ms,
        "routes": routes,
    }
