"""`lab audit verify`: check every hash chain of the append-only audit logs and name the first broken row.

Runs the app's own DB tool (`python -m app.db.admin verify-audit`) with the provisioned settings, so
the CLI and the API share one verifier (app/db/audit.py) and one definition of the canonical row.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

import labdef
from labdef.errors import LabError

app = typer.Typer(help="Append-only, hash-chained audit logs (per tenant and lab-wide).", no_args_is_help=True)


@app.command()
def verify(
    env_file: Annotated[Path | None, typer.Option(help="the app's settings (default <paths.etc>/app.env)")] = None,
) -> None:
    """Recompute every chain; exit 1 naming the first broken row (table and id)."""
    lab = labdef.load()
    env = dict(os.environ, SECLAB_ENV_FILE=str(env_file or Path(lab.paths.etc) / "app.env"))
    if not Path(env["SECLAB_ENV_FILE"]).exists():
        raise LabError(f"{env['SECLAB_ENV_FILE']} is missing: run ./lab up first")
    proc = subprocess.run(
        [sys.executable, "-m", "app.db.admin", "verify-audit"], env=env, capture_output=True, text=True, check=False
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    try:
        result = json.loads(lines[-1]) if lines else {}
    except ValueError:
        result = {}
    if proc.returncode not in (0, 1) or not result:
        detail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise LabError(f"audit verification could not run: {detail}")
    typer.echo(json.dumps(result, indent=2))
    if proc.returncode == 1:
        raise typer.Exit(1)
