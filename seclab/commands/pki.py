"""`lab pki`: the lab CA from the command line (init, status, rotate, revoke).

Thin layer over `pki.ca`: every decision (what to issue, when to renew, modes and owners) lives
there so Ansible (`python -m pki ensure`) and this CLI behave the same.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from cryptography import x509
from rich.console import Console
from rich.table import Table

import labdef
from pki.ca import EnsureResult, ensure, revoke, rotate, status
from pki.layout import DEFAULT_PRIVATE_GROUP, Layout
from pki.plan import build_plan
from pki.reload import run_hooks
from pki.reloader import Outcome, Reloader
from pki.services import build_reload_plan

app = typer.Typer(
    help="Lab PKI: root and intermediate CA, service and mTLS client certificates, CRL.",
    no_args_is_help=True,
)

LabOpt = Annotated[
    Path | None, typer.Option("--lab", help="lab definition (default: lab.yml / SECLAB_LAB_FILE)")
]
DirOpt = Annotated[Path | None, typer.Option("--dir", help="PKI directory (default: lab.yml paths.pki)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
ReloadOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--reload",
        help="extra command run after certificates changed and the default reloads ran "
        "(repeatable; no shell)",
    ),
]
NoReloadOpt = Annotated[
    bool,
    typer.Option(
        "--no-reload",
        help="only write the files; services keep the old certificates until the next `./lab up`",
    ),
]
GroupOpt = Annotated[
    str, typer.Option("--private-group", help="group allowed to traverse private/ ('' = none)")
]

REASONS = {r.name: r for r in x509.ReasonFlags if r not in (x509.ReasonFlags.remove_from_crl,)}


def _context(lab_file: Path | None, directory: Path | None) -> tuple[labdef.LabDefinition, Path]:
    try:
        lab = labdef.load(lab_file)
    except labdef.LabDefinitionError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    return lab, directory or Path(lab.paths.pki)


def _default_reloads(
    result: EnsureResult, lab: labdef.LabDefinition, d: Path, revoked: list[str]
) -> tuple[list[Outcome], str | None]:
    """Run the reload plan (pki/services.py) for what changed; (outcomes, why nothing ran)."""
    if not result.changed:
        return [], None
    if d.resolve() != Path(lab.paths.pki).resolve():
        # Services read lab.paths.pki: reloading them for files elsewhere would prove nothing.
        return [], f"services read {lab.paths.pki}, not {d}: no service reloaded"
    plan = build_reload_plan(lab, build_plan(lab))
    due = plan.due(result.issued, revoked=revoked, crl_updated=result.crl_updated)
    if not due:
        return [], "no running service loads the changed files at start (they are read per connection)"
    return asyncio.run(Reloader(lab, Layout(d)).run(due)), None


def _report(
    result: EnsureResult,
    reload: list[str] | None,
    as_json: bool,
    *,
    lab: labdef.LabDefinition,
    directory: Path,
    no_reload: bool,
    revoked: list[str] | None = None,
) -> None:
    out = result.model_dump(mode="json")
    outcomes, note = (
        ([], "--no-reload: services keep the old certificates until `./lab up`")
        if no_reload
        else (_default_reloads(result, lab, directory, revoked or []))
    )
    out["services"] = [o.model_dump() for o in outcomes]
    if note and result.changed:
        out["services_note"] = note
    if result.changed and reload:
        out["reload"] = [h.model_dump() for h in asyncio.run(run_hooks(reload))]
    if as_json:
        typer.echo(json.dumps(out, indent=2))
    elif not result.changed:
        typer.echo("nothing to do: every certificate is present, valid and not due")
    if not as_json:
        for name in result.issued:
            typer.echo(f"issued {name}: {result.reasons.get(name, '')}")
        for serial in result.revoked:
            typer.echo(f"revoked serial {serial}")
        if result.owners_skipped:
            skipped = ", ".join(result.owners_skipped)
            typer.echo(f"owners absent on this host (keys left with the current user): {skipped}")
        for o in outcomes:
            state = "skipped" if o.skipped else ("reloaded" if o.ok else "FAILED")
            typer.echo(f"{state} {o.service} (program {o.program}) by {o.how} [{o.seconds}s]: {o.detail}")
        if note and result.changed:
            typer.echo(note)
        for hook in out.get("reload", []):
            typer.echo(f"reload `{hook['command']}` -> {hook['returncode']}")
    failed = [o.service for o in outcomes if not o.ok and not o.skipped]
    if failed or any(h["returncode"] != 0 for h in out.get("reload", [])):
        # The new files are in place; a failed reload means a service still serves the old ones.
        what = ", ".join(failed) or "a --reload hook"
        typer.echo(f"reload failed ({what}): services may still use the previous certificates", err=True)
        raise typer.Exit(3)


@app.command("init")
def init_cmd(
    lab_file: LabOpt = None,
    directory: DirOpt = None,
    reload: ReloadOpt = None,
    no_reload: NoReloadOpt = False,
    private_group: GroupOpt = DEFAULT_PRIVATE_GROUP,
    as_json: JsonOpt = False,
) -> None:
    """Create or complete the PKI for the lab definition (idempotent: issues only what is missing or due)."""
    lab, d = _context(lab_file, directory)
    result = ensure(build_plan(lab), d, private_group=private_group or None)
    _report(result, reload, as_json, lab=lab, directory=d, no_reload=no_reload)


@app.command("status")
def status_cmd(lab_file: LabOpt = None, directory: DirOpt = None, as_json: JsonOpt = False) -> None:
    """Every certificate: subject, SANs, issuer, expiry, days left, and whether its chain verifies.

    Exits 1 when a certificate is missing, does not verify, or is revoked.
    """
    lab, d = _context(lab_file, directory)
    plan = build_plan(lab)
    rows = status(plan, d)
    present = {r.name for r in rows}
    missing = [n for n in ["root", "intermediate", *plan.names()] if n not in present]
    bad = [r.name for r in rows if not r.verifies]
    if as_json:
        payload = {
            "dir": str(d),
            "ca_cert": str(d / "ca" / "ca-bundle.crt"),
            "ok": not (missing or bad),
            "missing": missing,
            "certificates": [r.model_dump(mode="json") for r in rows],
        }
        typer.echo(json.dumps(payload, indent=2))
    else:
        table = Table(title=f"lab PKI in {d}")
        for col in ("name", "kind", "subject", "SANs", "issuer", "not after", "days", "verifies"):
            table.add_column(col)
        for r in rows:
            table.add_row(
                r.name,
                r.kind,
                r.subject,
                ", ".join(r.sans),
                r.issuer,
                r.not_after.strftime("%Y-%m-%d %H:%M"),
                f"{r.days_left:.1f}",
                "yes" if r.verifies else f"NO: {r.error}",
            )
        Console(width=200).print(table)
        if missing:
            typer.echo(f"missing: {', '.join(missing)} (run `lab pki init`)")
    if missing or bad:
        raise typer.Exit(1)


@app.command("rotate")
def rotate_cmd(
    names: Annotated[
        list[str] | None, typer.Argument(help="certificates to rotate (default: all leaves)")
    ] = None,
    lab_file: LabOpt = None,
    directory: DirOpt = None,
    reload: ReloadOpt = None,
    no_reload: NoReloadOpt = False,
    revoke_old: Annotated[bool, typer.Option("--revoke-old", help="put replaced certs on the CRL")] = False,
    private_group: GroupOpt = DEFAULT_PRIVATE_GROUP,
    as_json: JsonOpt = False,
) -> None:
    """Issue new keys and certificates now, then reload the services that use them (pki/services.py).

    Every reload is graceful; a service counts as reloaded once its listener presents the new
    certificate. Exits 3 when one did not; `--no-reload` leaves that to the next `./lab up`.
    """
    lab, d = _context(lab_file, directory)
    try:
        result = rotate(
            build_plan(lab), d, names or None, revoke_old=revoke_old, private_group=private_group or None
        )
    except KeyError as exc:
        typer.echo(str(exc.args[0]), err=True)
        raise typer.Exit(2) from None
    wanted = list(names) if names else build_plan(lab).names()
    _report(
        result,
        reload,
        as_json,
        lab=lab,
        directory=d,
        no_reload=no_reload,
        revoked=wanted if revoke_old else [],
    )


@app.command("revoke")
def revoke_cmd(
    name: Annotated[str, typer.Argument(help="certificate to revoke")],
    reason: Annotated[str, typer.Option(help=f"one of: {', '.join(REASONS)}")] = "unspecified",
    reissue: Annotated[bool, typer.Option("--reissue", help="issue a replacement in the same run")] = False,
    lab_file: LabOpt = None,
    directory: DirOpt = None,
    reload: ReloadOpt = None,
    no_reload: NoReloadOpt = False,
    private_group: GroupOpt = DEFAULT_PRIVATE_GROUP,
    as_json: JsonOpt = False,
) -> None:
    """Add the current certificate of NAME to the intermediate's CRL (crl/crl.pem).

    The CRL readers (nginx ssl_crl, PostgreSQL ssl_crl_file) reload; with --reissue, the holders of
    NAME reload too, so connections authenticated with the revoked certificate are closed.
    """
    if reason not in REASONS:
        typer.echo(f"unknown reason {reason!r}; one of: {', '.join(REASONS)}", err=True)
        raise typer.Exit(2)
    lab, d = _context(lab_file, directory)
    try:
        result = revoke(
            build_plan(lab),
            d,
            name,
            reason=REASONS[reason],
            reissue=reissue,
            private_group=private_group or None,
        )
    except (KeyError, FileNotFoundError) as exc:
        typer.echo(f"cannot revoke: {exc}", err=True)
        raise typer.Exit(2) from None
    _report(
        result,
        reload,
        as_json,
        lab=lab,
        directory=d,
        no_reload=no_reload,
        revoked=[name] if reissue else [],
    )
