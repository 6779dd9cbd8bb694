"""`lab tenant add NAME` / `lab tenant remove NAME [--keep-backup]`: a tenant's whole life in one place.

lab.yml stays the one source of truth: `add` writes the tenant into it and `remove` takes it out,
then `./lab up` converges every engine on it (schema, login role and grants through
`app.db.admin sync`, the identity provider's realm, which is derived from lab.yml). The parts that
`./lab up` only ever adds are removed here directly:
- PostgreSQL: `python -m app.db.admin delete-tenant` (schema, login role and its open sessions,
  database grant, registry row; tenancy.drop_tenant);
- Redis: the tenant's token budgets (`seclab:budget:<t>:*`), sweeper marks (`seclab:sweep:<t>:*`) and
  its dead-letter entries;
- secrets: nothing to delete: the tenant's database login is derived from one key (app/db/pools.py).
`--keep-backup` first takes a full pgBackRest backup (encrypted; kept until lab.yml backup.retention_full
newer full backups exist), so the removed tenant can still be restored with `lab restore --time`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

import labdef
from labdef.errors import LabError

app = typer.Typer(help="Add or remove a tenant (lab.yml, PostgreSQL, Redis, identity provider).", no_args_is_help=True)

NoUp = Annotated[bool, typer.Option("--no-up", help="change lab.yml and the data stores only; run ./lab up yourself")]


def _check_name(name: str) -> str:
    if not labdef.NAME_PATTERN.match(name):
        raise LabError(f"tenant name {name!r} must match {labdef.NAME_RE}")
    return name


def add_to_yaml(text: str, name: str, display_name: str) -> str:
    """lab.yml with the tenant appended to `tenants:` (text edit: comments and layout stay as written)."""
    lines = text.splitlines(keepends=True)
    try:
        start = next(i for i, ln in enumerate(lines) if ln.rstrip() == "tenants:")
    except StopIteration:
        raise LabError("lab.yml has no block-style `tenants:` list to add to") from None
    end = start + 1
    while end < len(lines) and (lines[end].startswith((" ", "\t")) or not lines[end].strip()):
        end += 1
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    entry = f"  - name: {name}\n" + (f"    display_name: {json.dumps(display_name)}\n" if display_name else "")
    return "".join(lines[:end] + [entry] + lines[end:])


def remove_from_yaml(text: str, name: str) -> str:
    """lab.yml without the tenant's list item (`- name: NAME` and its indented lines)."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    i = 0
    removed = False
    in_tenants = False
    while i < len(lines):
        ln = lines[i]
        if ln.rstrip() == "tenants:":
            in_tenants = True
        elif ln.strip() and not ln.startswith((" ", "\t")):
            in_tenants = False
        if in_tenants and re.match(rf"^(\s*)- name:\s*{re.escape(name)}\s*(#.*)?$", ln):
            indent = len(ln) - len(ln.lstrip())
            i += 1
            while i < len(lines) and lines[i].strip() and len(lines[i]) - len(lines[i].lstrip()) > indent \
                    and not lines[i].lstrip().startswith("- "):
                i += 1
            removed = True
            continue
        out.append(ln)
        i += 1
    if not removed:
        raise LabError(f"tenant {name!r} is not in lab.yml")
    return "".join(out)


def _write_checked(path: Path, text: str) -> labdef.LabDefinition:
    lab = labdef.parse(text, str(path))  # a definition that does not validate is never written
    tmp = path.with_name(f".{path.name}.new")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return lab


def _env_file(lab: labdef.LabDefinition) -> str:
    return str(Path(lab.paths.etc) / "app.env")


def _admin(lab: labdef.LabDefinition, *args: str) -> dict[str, Any]:
    env = dict(os.environ, SECLAB_ENV_FILE=_env_file(lab))
    proc = subprocess.run([sys.executable, "-m", "app.db.admin", *args], env=env, capture_output=True, text=True,
                          check=False, timeout=300)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    result = json.loads(lines[-1]) if lines else {}
    if proc.returncode != 0:
        raise LabError(f"app.db.admin {args[0]} failed: {result.get('msg') or proc.stderr.strip()[-300:]}")
    return dict(result)


async def purge_redis(redis: Any, tenant: str) -> dict[str, int]:
    """Delete the tenant's keys (budgets, sweeper marks) and its dead-letter entries; returns counts."""
    from app.worker.dlq import DLQ_KEY

    counts = {"keys": 0, "dlq_entries": 0}
    for pattern in (f"seclab:budget:{tenant}:*", f"seclab:sweep:{tenant}:*"):
        async for key in redis.scan_iter(match=pattern, count=500):
            counts["keys"] += int(await redis.delete(key))
    ids: list[Any] = []
    for entry_id, fields in await redis.xrange(DLQ_KEY):
        if (fields.get(b"tenant") or fields.get("tenant")) in (tenant, tenant.encode()):
            ids.append(entry_id)
    if ids:
        counts["dlq_entries"] = int(await redis.xdel(DLQ_KEY, *ids))
    return counts


def _purge_redis(lab: labdef.LabDefinition, tenant: str) -> dict[str, int]:
    import asyncio

    from app.core.config import load_settings
    from app.worker.runtime import redis_client

    # The root-only ACL user that may SCAN (the services' users may not), with the app's TLS settings.
    settings = load_settings(Path(_env_file(lab))).model_copy(update={
        "redis_user": "seclab_tenant_admin",
        "redis_password_file": str(Path(lab.paths.secrets) / "redis_tenant_admin_password"),
    })

    async def run() -> dict[str, int]:
        client = redis_client(settings)
        try:
            return await purge_redis(client, tenant)
        finally:
            await client.aclose()

    return asyncio.run(run())


def _up() -> None:
    proc = subprocess.run([sys.executable, "-m", "seclab.cli", "up"], check=False)
    if proc.returncode != 0:
        raise LabError("./lab up failed (see above); lab.yml already holds the change: fix and run ./lab up")


@app.command()
def add(
    name: str,
    display_name: Annotated[str, typer.Option(help="shown in the admin views")] = "",
    no_up: NoUp = False,
) -> None:
    """Write the tenant into lab.yml, then `./lab up` (schema, login role, grants, identity provider)."""
    _check_name(name)
    path = labdef.default_path()
    lab = labdef.load(path)
    if name in lab.tenant_names():
        typer.echo(json.dumps({"changed": False, "tenant": name, "msg": "already in lab.yml"}))
        return
    lab = _write_checked(path, add_to_yaml(path.read_text(encoding="utf-8"), name, display_name))
    result: dict[str, Any] = {"changed": True, "tenant": name, "lab_file": str(path)}
    if no_up:
        result["database"] = _admin(lab, "create-tenant", name)
    else:
        _up()
    typer.echo(json.dumps(result, indent=2))


@app.command()
def remove(
    name: str,
    keep_backup: Annotated[bool, typer.Option("--keep-backup", help="a full pgBackRest backup first")] = False,
    no_up: NoUp = False,
) -> None:
    """Take the tenant out of lab.yml, PostgreSQL and Redis, then `./lab up` (identity provider)."""
    _check_name(name)
    path = labdef.default_path()
    lab = labdef.load(path)
    users = [u.username for u in lab.users if u.tenant == name]
    if users:
        raise LabError(f"lab.yml users still belong to {name}: {', '.join(users)}; move or remove them first")
    result: dict[str, Any] = {"tenant": name}
    if keep_backup:
        from seclab.commands.backup import backup_rows, info, load_config, take_backup

        cfg = load_config(lab)
        take_backup(cfg, "full")
        rows = backup_rows(info(cfg))
        result["backup"] = rows[-1]["label"] if rows else None
    if name in lab.tenant_names():
        lab = _write_checked(path, remove_from_yaml(path.read_text(encoding="utf-8"), name))
        result["lab_file"] = "removed"
    result["database"] = _admin(lab, "delete-tenant", name)
    result["redis"] = _purge_redis(lab, name)
    if not no_up:
        _up()
    typer.echo(json.dumps(result, indent=2))
