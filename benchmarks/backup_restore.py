"""Backup, restore and WAL replay times with a seeded database (issue 14's "1 GB" measurement).

`python -m benchmarks.backup_restore --gb 1` as root on a provisioned lab (it restores the cluster:
the lab's writers stop for the restore). Steps: a database `seclab_seed` filled with about `--gb` GiB
of barely compressible rows; a full backup (timed); `--wal-mb` MiB of new WAL written after it; a
restore to the end of the archive (`lab restore --latest`, phases timed: restore of the files, WAL
replay, start); the replay rate is the WAL written after the backup divided by the replay time.
The seed database is dropped afterwards. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import labdef

ROOT = Path(__file__).resolve().parents[1]


def _cfg() -> dict[str, Any]:
    """What the provisioning wrote for `lab backup|restore` (<paths.etc>/backup.json)."""
    return dict(json.loads((Path(labdef.load().paths.etc) / "backup.json").read_text(encoding="utf-8")))


def _psql(cfg: dict[str, Any], sql: str, db: str = "postgres") -> str:
    proc = subprocess.run(["runuser", "-u", cfg["pg_user"], "--", "psql", "-h", cfg["socket_dir"], "-p",
                           str(cfg["port"]), "-d", db, "-v", "ON_ERROR_STOP=1", "-Atqc", sql],
                          capture_output=True, text=True, check=True, timeout=7200, cwd="/")
    return proc.stdout.strip()


def _lab(*args: str) -> dict[str, Any]:
    """The CLI as a user runs it (benchmarks never import the CLI)."""
    proc = subprocess.run([sys.executable, "-m", "seclab.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          check=False, timeout=7200)
    if proc.returncode != 0:
        raise RuntimeError(f"lab {' '.join(args)} failed: {(proc.stderr or proc.stdout).strip()[-400:]}")
    return dict(json.loads(proc.stdout))


def _seed(cfg: dict[str, Any], first: int, last: int) -> None:
    _psql(cfg, "INSERT INTO seed SELECT g, (SELECT string_agg(md5(random()::text || i || g), '')"
               f" FROM generate_series(1, 32) i) FROM generate_series({first}, {last}) g", db="seclab_seed")


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.backup_restore", description=__doc__.splitlines()[0])
    p.add_argument("--gb", type=float, default=1.0, help="size of the seeded database in GiB")
    p.add_argument("--wal-mb", type=int, default=256, help="WAL written after the backup, replayed by the restore")
    args = p.parse_args()
    if os.geteuid() != 0:
        print(json.dumps({"error": "run as root"}))
        return 2
    cfg = _cfg()
    out: dict[str, Any] = {"gb": args.gb, "wal_mb": args.wal_mb}
    rows = int(args.gb * 1024 * 1024 * 1024 / 1100)  # ~1 KiB of random hex per row, plus tuple overhead
    _psql(cfg, "DROP DATABASE IF EXISTS seclab_seed")
    _psql(cfg, "CREATE DATABASE seclab_seed")
    try:
        t0 = time.monotonic()
        _psql(cfg, "CREATE TABLE seed (id bigint PRIMARY KEY, pad text NOT NULL)", db="seclab_seed")
        _seed(cfg, 1, rows)
        out["seed_s"] = round(time.monotonic() - t0, 1)
        out["cluster_mb"] = round(int(_psql(cfg, "SELECT sum(pg_database_size(oid)) FROM pg_database")) / 2**20)
        full = _lab("backup", "--full")
        out["full_backup_s"] = full["seconds"]
        out["repo_backup_mb"] = round(((full["backup"] or {}).get("repo_bytes") or 0) / 2**20, 1)
        out["incr_backup_unchanged_s"] = _lab("backup")["seconds"]
        lsn0 = _psql(cfg, "SELECT pg_current_wal_lsn()")
        wal_rows = int(args.wal_mb * 1024 * 1024 / 1400)
        _seed(cfg, rows + 1, rows + wal_rows)
        wal_bytes = int(_psql(cfg, f"SELECT pg_current_wal_lsn() - '{lsn0}'::pg_lsn"))
        out["wal_written_mb"] = round(wal_bytes / 2**20, 1)
        result = _lab("restore", "--latest")
        out.update({k: result[k] for k in ("archive_wal_s", "stop_s", "restore_s", "replay_s", "start_s", "total_s",
                                           "audit_ok", "app_ready")})
        out["replay_mb_per_s"] = round(wal_bytes / 2**20 / max(float(result["replay_s"]), 0.001), 1)
        out["rows_after_restore"] = int(_psql(cfg, "SELECT count(*) FROM seed", db="seclab_seed"))
        out["rows_expected"] = rows + wal_rows
    finally:
        _psql(cfg, "DROP DATABASE IF EXISTS seclab_seed")
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
