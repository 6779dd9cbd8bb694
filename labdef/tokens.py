"""`lab token USER`: a real OAuth2 password grant against Keycloak (over loopback HTTPS).

The user's password was generated at provisioning (`<secrets>/users/<user>.password`, 0600); reading
it needs the same privileges as provisioning did, which is the point: tokens are for the operator.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from labdef import LabDefinition
from labdef.errors import LabError
from labdef.status import idp_info, idp_verify


def issuer(lab: LabDefinition) -> str:
    return str(idp_info(lab)["issuer"])


def user_password(lab: LabDefinition, username: str) -> str:
    try:
        lab.user(username)
    except KeyError:
        known = ", ".join(u.username for u in lab.users)
        raise LabError(f"no user {username!r} in the lab definition (known: {known})") from None
    path = Path(lab.paths.secrets) / "users" / f"{username}.password"
    try:
        return path.read_text().strip()
    except PermissionError:
        raise LabError(f"cannot read {path}: run as the user who provisioned the lab (root)") from None
    except OSError:
        raise LabError(f"{path} is missing: run ./lab up first") from None


def user_totp(lab: LabDefinition, username: str) -> str | None:
    """lab-admin must present a one-time code (Keycloak's direct-grant OTP step); the seed was generated
    at provisioning and is the user's OTP credential in Keycloak."""
    if "lab-admin" not in lab.user(username).roles:
        return None
    from labdef import totp

    path = Path(lab.paths.secrets) / "users" / f"{username}.totp"
    try:
        return totp.fresh_code(path)  # never a code already used: Keycloak refuses reuse (OTP policy)
    except OSError:
        raise LabError(f"{path} is missing: lab-admin tokens need the TOTP seed made by ./lab up") from None


def token_endpoint(lab: LabDefinition) -> str:
    base = idp_info(lab)["internal_url"]
    return f"{base}/realms/{lab.identity.realm}/protocol/openid-connect/token"


def get_access_token(lab: LabDefinition, username: str, timeout: float = 10.0) -> str:
    form = {
        "grant_type": "password",
        "client_id": lab.identity.cli_client_id,
        "username": username,
        "password": user_password(lab, username),
        "scope": "openid",
    }
    code = user_totp(lab, username)
    if code is not None:
        form["totp"] = code
    url = token_endpoint(lab)
    verify = idp_verify(lab)
    if verify is False:  # a password never goes to a Keycloak this host cannot verify
        raise LabError("the lab CA is missing (paths.pki/ca/ca-bundle.crt): run ./lab up first")
    try:
        r = httpx.post(url, data=form, timeout=timeout, verify=verify)
    except httpx.HTTPError as exc:
        raise LabError(f"identity provider unreachable at {url} ({exc.__class__.__name__}): is the lab up?") from None
    if r.status_code != 200:
        try:
            detail = r.json().get("error_description") or r.json().get("error")
        except ValueError:
            detail = r.text[:200]
        raise LabError(f"token request for {username} refused ({r.status_code}): {detail}")
    return str(r.json()["access_token"])
