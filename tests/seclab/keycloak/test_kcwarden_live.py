"""kcwarden on the realm as the running Keycloak exports it (not only the file lab.yml renders).

`kcwarden download` reads the live realm through the admin REST API with the `seclab-admin` service
account (Keycloak verified against the lab root), then `kcwarden audit` with the lab's waivers: no
finding of MEDIUM or higher may remain. This catches what Keycloak adds or changes on import (its
built-in clients, scopes and defaults), which the rendered file cannot show.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from seclab.keycloak import access

from .conftest import Keycloak

pytestmark = pytest.mark.integration  # live: the lab's Keycloak

ROOT = Path(__file__).resolve().parents[3]
WAIVERS = ROOT / "labdef" / "kcwarden-waivers.yml"
KCWARDEN = shutil.which("kcwarden", path=str(Path(sys.executable).parent)) or "kcwarden"
SEVERE = {"Medium", "High", "Critical"}


def _live_export(kc: Keycloak, out: Path) -> dict:
    cred = access.admin_credentials(kc.lab)[0]
    env = {**os.environ, "REQUESTS_CA_BUNDLE": str(access.ca_file(kc.lab)), "KCWARDEN_CLIENT_SECRET": cred.secret}
    proc = subprocess.run(
        [KCWARDEN, "download", "-r", kc.realm, "-m", "client", "--client-id", cred.client_id, "-o", str(out),
         access.base_url(kc.lab)],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(json.loads(out.read_text()))


def test_kcwarden_on_the_live_realm_finds_nothing_medium_or_higher(kc: Keycloak, tmp_path: Path) -> None:
    export = _live_export(kc, tmp_path / "live-realm.json")
    # The download really is the live realm: Keycloak's own built-in clients are in it.
    client_ids = {c["clientId"] for c in export["clients"]}
    assert {"seclab-cli", "seclab-web", "seclab-api", "seclab-probe", "account", "admin-cli"} <= client_ids
    out = tmp_path / "findings.json"
    subprocess.run([KCWARDEN, "audit", str(tmp_path / "live-realm.json"), "--format", "json", "-o", str(out),
                    "-c", str(WAIVERS)], check=True, capture_output=True, timeout=300)
    findings = json.loads(out.read_text())
    severe = sorted({(f["severity"], f["reporting_auditor"], f["entity"]) for f in findings if f["severity"] in SEVERE})
    assert severe == [], "\n".join(map(str, severe))
