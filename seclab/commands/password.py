"""`lab password USER`: a lab user's generated password, to log in to the chat page as a person.

Why root only and nothing else printed: the password file is root's (0600, generated at provisioning),
and the command's whole output is meant for a pipe or a password manager (`./lab password alice |
xclip`), so no banner or hint may end up in it. A lab-admin also needs the second factor: `--totp`
prints the current TOTP code from the seed `./lab up` generated (OWASP ASVS 4.0.3 V2.8.1).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Annotated

import typer

from labdef.errors import LabError


def require_root(geteuid: Callable[[], int] | None = None) -> None:
    """Refuse before reading anything: the secrets are the provisioner's (root's), never another user's."""
    if (geteuid or os.geteuid)() != 0:
        raise LabError("lab password is for root only (the lab's passwords are root's files)")


def register(cli: typer.Typer) -> None:
    """Add the top-level `password` command to the lab CLI."""

    @cli.command("password")
    def password(
        user: Annotated[str, typer.Argument(help="a user of lab.yml, e.g. alice")],
        totp: Annotated[bool, typer.Option("--totp", help="print the user's current TOTP code instead (lab-admin)")] = False,
    ) -> None:
        """Print USER's generated password (root only; nothing else is printed)."""
        require_root()
        import labdef
        from labdef import tokens

        lab = labdef.load()
        if totp:
            code = tokens.user_totp(lab, user)
            if code is None:
                raise LabError(f"{user} has no second factor (only lab-admin users do)")
            typer.echo(code)
            return
        typer.echo(tokens.user_password(lab, user))
