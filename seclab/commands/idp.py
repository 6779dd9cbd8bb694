"""`lab idp` / `python -m seclab.idp`: provision the stand-in issuer and rotate its signing keys.

Thin layer: the work is in `seclab.idp.provision` and `seclab.idp.keys`, so Ansible (which runs
`python -m seclab.idp init ... --json`) and a person at the terminal get the same behaviour.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

import labdef
from seclab.idp.keys import KeyStore
from seclab.idp.settings import IdpSettings

app = typer.Typer(help="Stand-in identity provider (used where Keycloak cannot run).", no_args_is_help=True)

LabOpt = Annotated[Path | None, typer.Option("--lab", help='lab.yml, or lab.json ({"lab": {...}})')]
StateOpt = Annotated[Path | None, typer.Option("--state-dir", help="default: $SECLAB_IDP_STATE_DIR or <paths.data>/idp")]
KeysOpt = Annotated[Path | None, typer.Option("--keys-dir", help="default: $SECLAB_IDP_KEYS_DIR or <state-dir>/keys")]


def _lab(path: Path | None) -> labdef.LabDefinition:
    if path is not None and path.suffix == ".json":
        return IdpSettings(lab_file=path).load_lab()
    return labdef.load(path)


def _keys_dir(lab: labdef.LabDefinition, state_dir: Path | None, keys_dir: Path | None) -> Path:
    env = IdpSettings()
    if keys_dir is not None:
        return keys_dir
    if state_dir is not None:
        return state_dir / "keys"
    if env.keys_dir is not None:
        return env.keys_dir
    return Path(lab.paths.data) / "idp" / "keys"


@app.command("init")
def init(
    lab_file: LabOpt = None,
    secrets_dir: Annotated[Path | None, typer.Option("--secrets-dir", help="default: lab paths.secrets")] = None,
    state_dir: StateOpt = None,
    keys_dir: KeysOpt = None,
    realm_export: Annotated[Path | None, typer.Option("--realm-export", help="also write the realm export here (0600)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print {changed, what} for Ansible")] = False,
) -> None:
    """Hash the users' passwords, create keys and seeds that are missing, write the realm export."""
    from seclab.idp.provision import ProvisionError, provision

    lab = _lab(lab_file)
    state = state_dir or Path(lab.paths.data) / "idp"
    try:
        result = provision(
            lab,
            secrets_dir=secrets_dir or Path(lab.paths.secrets),
            state_dir=state,
            keys_dir=_keys_dir(lab, state_dir, keys_dir),
            realm_export=realm_export,
        )
    except ProvisionError as exc:
        typer.echo(f"idp init: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(result) if as_json else ("changed: " + ", ".join(result["what"]) if result["changed"] else "unchanged"))


@app.command("rotate-keys")
def rotate_keys(
    lab_file: LabOpt = None,
    state_dir: StateOpt = None,
    keys_dir: KeysOpt = None,
    keep: Annotated[int, typer.Option(help="keys kept in the JWKS (>= 2 keeps tokens of the previous key valid)")] = 2,
) -> None:
    """Add a new signing key; the running issuer signs with it at once and still publishes the previous one."""
    lab = _lab(lab_file)
    kid = KeyStore(_keys_dir(lab, state_dir, keys_dir)).rotate(keep=keep)
    typer.echo(f"new signing key {kid}")


@app.command("jwks")
def jwks(lab_file: LabOpt = None, state_dir: StateOpt = None, keys_dir: KeysOpt = None) -> None:
    """Print the public JWKS (what /protocol/openid-connect/certs serves)."""
    lab = _lab(lab_file)
    typer.echo(json.dumps(KeyStore(_keys_dir(lab, state_dir, keys_dir)).jwks(), indent=2))
