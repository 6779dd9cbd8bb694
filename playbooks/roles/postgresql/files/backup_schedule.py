#!/usr/bin/env python3
"""pgBackRest on a schedule supervisord keeps (the lab host has no cron), and its Prometheus metrics.

Every `--check-every` seconds: read `pgbackrest info` (JSON); take a full backup when the newest full
one is older than `--full-every-hours` (or there is none), else an incremental one when the newest
backup of any type is older than `--incr-every-minutes`; then write the node exporter textfile
`--out` with the newest good backup's times, so SeclabBackupTooOld fires when this stops working
(OWASP ASVS 4.0.3 V8.1.6 backups; Top 10 2021 A09 a silent job is a blind spot).

Standalone (stdlib only, system python3), run as the postgres OS user: it owns the data directory and
the repository, and needs nothing else. Prints one JSON line per action to stdout (the process log).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any


def info(stanza: str) -> list[dict[str, Any]]:
    """The stanza's backups, oldest first ([] when none or the stanza is not made yet)."""
    proc = subprocess.run(["pgbackrest", f"--stanza={stanza}", "--output=json", "info"],
                          capture_output=True, text=True, check=False, timeout=120)
    if proc.returncode != 0:
        return []
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        return []
    for entry in data:
        if entry.get("name") == stanza:
            return list(entry.get("backup") or [])
    return []


def stop_time(backup: dict[str, Any]) -> float:
    return float(backup.get("timestamp", {}).get("stop", 0))


def due(backups: list[dict[str, Any]], now: float, full_every_s: float, incr_every_s: float) -> str | None:
    fulls = [b for b in backups if b.get("type") == "full"]
    if not fulls or now - max(stop_time(b) for b in fulls) >= full_every_s:
        return "full"
    if now - max(stop_time(b) for b in backups) >= incr_every_s:
        return "incr"
    return None


def metrics(stanza: str, backups: list[dict[str, Any]], failures: int) -> str:
    lines = [
        "# HELP seclab_backup_last_success_timestamp_seconds Stop time of the newest good pgBackRest backup.",
        "# TYPE seclab_backup_last_success_timestamp_seconds gauge",
    ]
    if backups:
        newest = max(backups, key=stop_time)
        fulls = [b for b in backups if b.get("type") == "full"]
        last_full = max((stop_time(b) for b in fulls), default=0)
        duration = stop_time(newest) - float(newest.get("timestamp", {}).get("start", 0))
        lines.append(f'seclab_backup_last_success_timestamp_seconds{{stanza="{stanza}"}} {stop_time(newest):.0f}')
        lines += [
            "# HELP seclab_backup_last_full_timestamp_seconds Stop time of the newest full backup.",
            "# TYPE seclab_backup_last_full_timestamp_seconds gauge",
            f'seclab_backup_last_full_timestamp_seconds{{stanza="{stanza}"}} {last_full:.0f}',
            "# HELP seclab_backup_last_duration_seconds Duration of the newest backup.",
            "# TYPE seclab_backup_last_duration_seconds gauge",
            f'seclab_backup_last_duration_seconds{{stanza="{stanza}"}} {duration:.0f}',
        ]
    lines += [
        "# HELP seclab_backup_sets Backups kept in the repository.",
        "# TYPE seclab_backup_sets gauge",
        f'seclab_backup_sets{{stanza="{stanza}"}} {len(backups)}',
        "# HELP seclab_backup_failures_total Scheduled backups that failed since the scheduler started.",
        "# TYPE seclab_backup_failures_total counter",
        f'seclab_backup_failures_total{{stanza="{stanza}"}} {failures}',
    ]
    return "\n".join(lines) + "\n"


def write_metrics(path: str, text: str) -> None:
    # In place, one write: the textfile directory belongs to the exporter's user, not to postgres.
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stanza", required=True)
    p.add_argument("--full-every-hours", type=float, required=True)
    p.add_argument("--incr-every-minutes", type=float, required=True)
    p.add_argument("--check-every", type=float, default=60.0)
    p.add_argument("--out", required=True, help="node exporter textfile (.prom)")
    p.add_argument("--once", action="store_true", help="one round, then exit (tests)")
    args = p.parse_args(argv)
    failures = 0
    while True:
        backups = info(args.stanza)
        kind = due(backups, time.time(), args.full_every_hours * 3600, args.incr_every_minutes * 60)
        if kind is not None:
            t0 = time.monotonic()
            proc = subprocess.run(["pgbackrest", f"--stanza={args.stanza}", f"--type={kind}", "backup"],
                                  capture_output=True, text=True, check=False)
            ok = proc.returncode == 0
            failures += 0 if ok else 1
            print(json.dumps({"event": "backup", "type": kind, "ok": ok, "seconds": round(time.monotonic() - t0, 1),
                              "error": None if ok else (proc.stderr.strip().splitlines() or ["?"])[-1][:300]}),
                  flush=True)
            backups = info(args.stanza)
        try:
            write_metrics(args.out, metrics(args.stanza, backups, failures))
        except OSError as exc:
            print(json.dumps({"event": "metrics", "ok": False, "error": str(exc)[:200]}), flush=True)
        if args.once:
            return 0
        time.sleep(args.check_every)


if __name__ == "__main__":
    os.umask(0o022)  # the metrics file must be readable by the node exporter; pgBackRest sets its own modes
    sys.exit(main())
