"""`lab backup [--full]`, `lab backup list`, `lab restore --latest | --time ISO-8601`: pgBackRest on the lab host.

What the provisioning made (playbooks/roles/postgresql/tasks/backup.yml) is described in
`<paths.etc>/backup.json` (stanza, data directory, socket, the programs that write to PostgreSQL);
this module only orchestrates. Run as root on the lab host: pgBackRest runs as the postgres OS user
(it owns the data directory and the repository), the process manager needs root.

Restore, in order: archive the current WAL (when the server still runs, so the newest writes are in
the repository), stop every program that writes to PostgreSQL and the backup scheduler, stop the
server, `pgbackrest restore --delta` (to the time target, or to the end of the archived WAL), start
the server and wait until WAL replay has finished and it is promoted, start the writers again, and
verify: every audit hash chain (`python -m app.db.admin verify-audit`) and the API's readiness.
Timings of each phase are printed (issue 14 asks for them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel, ConfigDict

import labdef
from labdef.errors import LabError

app = typer.Typer(help="PostgreSQL backups (pgBackRest, encrypted repository, WAL archiving).")
restore_app = typer.Typer(help="Restore PostgreSQL from the backup repository (latest, or a point in time).")


class BackupConfig(BaseModel):
    """`<paths.etc>/backup.json`, rendered by the postgresql role."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stanza: str
    pg_user: str
    data_dir: str
    socket_dir: str
    port: int
    bin_dir: str
    server_process: str
    scheduler_process: str
    writers: list[str]
    env_file: str
    app_url: str
    ca_file: str
    client_cert: str
    client_key: str


def load_config(lab: labdef.LabDefinition | None = None) -> BackupConfig:
    lab = lab or labdef.load()
    path = Path(lab.paths.etc) / "backup.json"
    try:
        return BackupConfig.model_validate_json(path.read_text(encoding="utf-8"))
    except OSError:
        raise LabError(f"{path} is missing: run ./lab up first (backups are provisioned by the postgresql role)") from None


def parse_target(text: str) -> datetime:
    """An ISO 8601 time WITH its offset: a restore target without one would be read in some server's zone."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise LabError(f"--time {text!r} is not ISO 8601, e.g. '2026-12-02 17:30:00+00:00'") from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise LabError(f"--time {text!r} has no UTC offset: add one, e.g. '{text.strip()}+00:00'")
    return when.astimezone(UTC)


def pg_target(when: datetime) -> str:
    """PostgreSQL's recovery_target_time form, in UTC."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")


def restore_argv(cfg: BackupConfig, target: datetime | None) -> list[str]:
    argv = ["pgbackrest", f"--stanza={cfg.stanza}", "--delta", "--log-level-console=info"]
    if target is not None:
        # The newest backup that ended before the target is chosen by pgBackRest; replay stops at the
        # target and the server is promoted (a new timeline: later writes never mix with the old ones).
        argv += ["--type=time", f"--target={pg_target(target)}", "--target-action=promote"]
    return argv + ["restore"]


def _as_pg(cfg: BackupConfig, argv: list[str], *, check: bool = True, timeout: float | None = None) -> str:
    proc = subprocess.run(["runuser", "-u", cfg.pg_user, "--", *argv], capture_output=True, text=True,
                          check=False, timeout=timeout, cwd="/")
    if check and proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        raise LabError(f"{argv[0]} {argv[-1]} failed: {detail}")
    return proc.stdout


def _psql(cfg: BackupConfig, sql: str, *, check: bool = True) -> str:
    return _as_pg(cfg, ["psql", "-h", cfg.socket_dir, "-p", str(cfg.port), "-d", "postgres", "-Atqc", sql],
                  check=check, timeout=60).strip()


def info(cfg: BackupConfig) -> dict[str, Any]:
    out = _as_pg(cfg, ["pgbackrest", f"--stanza={cfg.stanza}", "--output=json", "info"], timeout=120)
    for entry in json.loads(out or "[]"):
        if entry.get("name") == cfg.stanza:
            return dict(entry)
    return {}


def backup_rows(stanza_info: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per backup set, oldest first, with UTC times (for `lab backup list`)."""
    rows = []
    for b in stanza_info.get("backup") or []:
        ts = b.get("timestamp", {})
        rows.append({
            "label": b.get("label"), "type": b.get("type"),
            "start": datetime.fromtimestamp(ts.get("start", 0), UTC).isoformat(),
            "stop": datetime.fromtimestamp(ts.get("stop", 0), UTC).isoformat(),
            "seconds": int(ts.get("stop", 0) - ts.get("start", 0)),
            "size_bytes": (b.get("info") or {}).get("size"),
            "repo_bytes": ((b.get("info") or {}).get("repository") or {}).get("delta"),
            "wal": f"{(b.get('archive') or {}).get('start')}..{(b.get('archive') or {}).get('stop')}",
        })
    return rows


def take_backup(cfg: BackupConfig, kind: str, wait_s: float = 1800) -> None:
    """One backup; waits while another one (the scheduler's) holds pgBackRest's lock."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            _as_pg(cfg, ["pgbackrest", f"--stanza={cfg.stanza}", f"--type={kind}", "backup"])
            return
        except LabError as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
        time.sleep(2)


def _service(action: str, name: str) -> None:
    """Start/stop one program of the process manager (supervisord here, systemd units elsewhere)."""
    if shutil.which("supervisorctl"):
        proc = subprocess.run(["supervisorctl", action, name], capture_output=True, text=True, check=False)
        said = proc.stdout.lower()
        if proc.returncode != 0 and not any(w in said for w in ("no such process", "already", "not running")):
            raise LabError(f"supervisorctl {action} {name}: {proc.stdout.strip() or proc.stderr.strip()}")
        return
    proc = subprocess.run(["systemctl", action, f"seclab-{name}.service"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise LabError(f"systemctl {action} seclab-{name}: {proc.stderr.strip()}")


def _pg_up(cfg: BackupConfig) -> bool:
    return subprocess.run([f"{cfg.bin_dir}/pg_isready", "-q", "-h", cfg.socket_dir, "-p", str(cfg.port)],
                          check=False).returncode == 0


def archive_current_wal(cfg: BackupConfig, timeout_s: float = 120) -> str | None:
    """Switch to a new WAL segment and wait until the old one is in the repository (None: server down)."""
    if not _pg_up(cfg):
        return None
    segment = _psql(cfg, "SELECT pg_walfile_name(pg_switch_wal())")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        last = _psql(cfg, "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
        if last and last[-24:] >= segment[-24:] and last[:8] == segment[:8]:
            return segment
        time.sleep(0.5)
    raise LabError(f"WAL segment {segment} was not archived within {timeout_s:.0f} s (see pgbackrest logs)")


def _wait(what: str, ok: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ok():
            return
        time.sleep(0.5)
    raise LabError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _verify(cfg: BackupConfig) -> dict[str, Any]:
    env = dict(os.environ, SECLAB_ENV_FILE=cfg.env_file)
    proc = subprocess.run([sys.executable, "-m", "app.db.admin", "verify-audit"], env=env, capture_output=True,
                          text=True, check=False, timeout=300)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    audit = json.loads(lines[-1]) if lines else {"ok": False, "error": proc.stderr.strip()[-300:]}
    import ssl

    import httpx

    tls = ssl.create_default_context(cafile=cfg.ca_file)  # the API's mTLS, as the edge reaches it
    tls.load_cert_chain(cfg.client_cert, cfg.client_key)
    ready: Any = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{cfg.app_url}/readyz", verify=tls, timeout=5)
            ready = r.status_code
            if r.status_code == 200:
                break
        except httpx.HTTPError as exc:
            ready = type(exc).__name__
        time.sleep(1)
    return {"audit_ok": bool(audit.get("ok")), "audit": audit, "app_ready": ready == 200, "app_readyz": ready}


def run_restore(cfg: BackupConfig, target: datetime | None) -> dict[str, Any]:
    t: dict[str, float] = {}
    t0 = time.monotonic()
    segment = archive_current_wal(cfg)
    t["archive_wal_s"] = time.monotonic() - t0
    t1 = time.monotonic()
    for name in (*cfg.writers, cfg.scheduler_process):
        _service("stop", name)
    _service("stop", cfg.server_process)
    t["stop_s"] = time.monotonic() - t1
    data = Path(cfg.data_dir)
    if not data.exists():  # the data directory was lost: pgBackRest restores into an empty one
        data.mkdir(mode=0o700, parents=True)
        shutil.chown(data, cfg.pg_user, cfg.pg_user)
    t2 = time.monotonic()
    _as_pg(cfg, restore_argv(cfg, target))
    t["restore_s"] = time.monotonic() - t2
    t3 = time.monotonic()
    _service("start", cfg.server_process)
    _wait("PostgreSQL to accept connections", lambda: _pg_up(cfg), 600)
    _wait("WAL replay to finish (promotion)",
          lambda: _psql(cfg, "SELECT pg_is_in_recovery()", check=False) == "f", 1800)
    t["replay_s"] = time.monotonic() - t3
    t4 = time.monotonic()
    for name in (cfg.scheduler_process, *cfg.writers):
        _service("start", name)
    t["start_s"] = time.monotonic() - t4
    checks = _verify(cfg)
    t["total_s"] = time.monotonic() - t0
    return {"target": pg_target(target) if target else "latest", "archived_before": segment,
            "timeline": _psql(cfg, "SELECT timeline_id FROM pg_control_checkpoint()", check=False),
            **{k: round(v, 2) for k, v in t.items()}, **checks}


def _require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("run as root on the lab host (pgBackRest runs as postgres, the process manager needs root)")


@app.callback(invoke_without_command=True)
def backup(
    ctx: typer.Context,
    full: Annotated[bool, typer.Option("--full", help="a full backup (default: incremental on the last one)")] = False,
) -> None:
    """Take a backup now (incremental unless --full); `lab backup list` shows what the repository holds."""
    if ctx.invoked_subcommand is not None:
        return
    _require_root()
    cfg = load_config()
    kind = "full" if full else "incr"
    t0 = time.monotonic()
    take_backup(cfg, kind)
    rows = backup_rows(info(cfg))
    typer.echo(json.dumps({"backup": rows[-1] if rows else None, "type": kind,
                           "seconds": round(time.monotonic() - t0, 2)}, indent=2))


@app.command("list")
def list_cmd(as_json: Annotated[bool, typer.Option("--json", help="pgBackRest's own JSON")] = False) -> None:
    """Backup sets (oldest first) and the archived WAL range: what a restore can reach."""
    _require_root()
    cfg = load_config()
    data = info(cfg)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    for row in backup_rows(data):
        typer.echo(f"{row['label']:<36} {row['type']:<5} {row['stop']}  {row['seconds']:>5}s  "
                   f"{row['size_bytes'] or 0:>12} B  wal {row['wal']}")
    archive = (data.get("archive") or [{}])[-1]
    typer.echo(f"archived WAL: {archive.get('min')} .. {archive.get('max')}; status: "
               f"{(data.get('status') or {}).get('message', '?')}")


@restore_app.callback(invoke_without_command=True)
def restore(
    latest: Annotated[bool, typer.Option("--latest", help="to the end of the archived WAL")] = False,
    at: Annotated[str | None, typer.Option("--time", help="point in time, ISO 8601 with its offset")] = None,
) -> None:
    """Stop the writers, restore, replay WAL to the target, start everything, verify (audit chains, API)."""
    if latest == (at is not None):
        raise LabError("give exactly one of --latest or --time '2026-12-02 17:30:00+00:00'")
    target = parse_target(at) if at is not None else None
    _require_root()
    result = run_restore(load_config(), target)
    typer.echo(json.dumps(result, indent=2))
    if not (result["audit_ok"] and result["app_ready"]):
        raise typer.Exit(1)
