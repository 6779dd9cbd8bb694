"""Pieces of seclab.keycloak that need no running Keycloak: TOTP codes, the settings diff, credentials."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
from pathlib import Path

import pytest

import labdef
from labdef import totp
from seclab.keycloak import access
from seclab.keycloak.__main__ import main
from seclab.keycloak.converge import _Applied, _settings_diff


def test_code_is_rfc6238_with_keycloaks_raw_secret() -> None:
    # RFC 6238 appendix B, SHA-1 seed "12345678901234567890", T = 59 s -> 94287082 (8 digits).
    assert totp.code("12345678901234567890", 59 // 30, digits=8) == "94287082"
    seed = totp.new_secret()
    assert len(seed) == 20 and seed.isalnum()
    # An authenticator app gets base32 of the raw secret (what Keycloak shows in its QR code).
    assert base64.b32decode(totp.otpauth_key(seed) + "=" * (-len(totp.otpauth_key(seed)) % 8)) == seed.encode()
    # 6 digits by the realm's OTP policy: the dynamic truncation of HMAC-SHA1(seed, step), mod 10^6.
    mac = hmac.new(seed.encode(), struct.pack(">Q", 7), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    assert totp.code(seed, 7) == str((int.from_bytes(mac[offset:offset + 4], "big") & 0x7FFFFFFF) % 10**6).zfill(6)


def test_fresh_code_never_hands_out_a_step_twice(tmp_path: Path) -> None:
    seed_file = tmp_path / "admin.totp"
    seed_file.write_text("12345678901234567890\n")
    clock = {"now": 30 * 1000 + 5.0}
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        clock["now"] += s

    codes = [totp.fresh_code(seed_file, now=lambda: clock["now"], sleep=sleep) for _ in range(3)]
    seed = "12345678901234567890"
    # Steps 1000 (now) and 1001 (look-ahead 1); the third waits for the next period, then takes 1002.
    assert codes == [totp.code(seed, 1000), totp.code(seed, 1001), totp.code(seed, 1002)]
    assert len(slept) == 1 and 24 < slept[0] < 26
    assert (tmp_path / "admin.totp.last").read_text() == "1002"
    assert (tmp_path / "admin.totp.last").stat().st_mode & 0o777 == 0o600


def test_settings_diff_names_only_what_differs() -> None:
    want = {"realm": "seclab", "accessTokenLifespan": 300, "bruteForceProtected": True,
            "enabledEventTypes": ["LOGIN", "LOGOUT"], "clients": [{"clientId": "x"}], "attributes": {"a": "b"},
            "defaultDefaultClientScopes": ["basic"]}
    have = {"realm": "seclab", "accessTokenLifespan": 3600, "bruteForceProtected": True,
            "enabledEventTypes": ["LOGOUT", "LOGIN"], "clients": []}
    # Lists compare as sets; collections and import-only keys (absent from the admin API) are left out.
    assert _settings_diff(want, have) == {"accessTokenLifespan": 300}
    assert _settings_diff(want, {**have, "accessTokenLifespan": 300}) == {}


def test_applied_password_fingerprints_are_private_and_not_passwords(tmp_path: Path) -> None:
    path = tmp_path / "keycloak" / "applied.json"
    applied = _Applied(path)
    assert applied.differs("alice", "Secret-pass-123")
    applied.record("alice", "Secret-pass-123")
    applied.save()
    assert path.stat().st_mode & 0o777 == 0o600 and "Secret-pass-123" not in path.read_text()
    again = _Applied(path)
    assert not again.differs("alice", "Secret-pass-123") and again.differs("alice", "Other-pass-123")


def test_admin_credentials_prefer_the_permanent_account(tmp_path: Path) -> None:
    base = labdef.load(labdef.DEFAULT_PATH)
    lab = base.model_copy(update={"paths": base.paths.model_copy(update={"secrets": str(tmp_path)})})
    with pytest.raises(FileNotFoundError, match="run ./lab up"):
        access.admin_credentials(lab)
    access.secrets_dir(lab).mkdir()
    access.bootstrap_secret_path(lab).write_text("boot\n")
    assert [(c.client_id, c.permanent) for c in access.admin_credentials(lab)] == [("seclab-bootstrap-admin", False)]
    access.admin_secret_path(lab).write_text("perm\n")
    creds = access.admin_credentials(lab)
    assert (creds[0].client_id, creds[0].secret, creds[0].permanent) == ("seclab-admin", "perm", True)


def test_render_command_for_ansible(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = labdef.load(labdef.DEFAULT_PATH)
    lab_json = tmp_path / "lab.json"
    lab_json.write_text(json.dumps(labdef.as_vars(lab)))
    (tmp_path / "s" / "users").mkdir(parents=True)
    args = ["render", "--lab", str(lab_json), "--secrets-dir", str(tmp_path / "s"),
            "--realm-export", str(tmp_path / "realm.json")]
    assert main(args) == 2  # no generated passwords yet: a clear error, not a traceback
    assert "missing" in capsys.readouterr().err
    for u in lab.users:
        (tmp_path / "s" / "users" / f"{u.username}.password").write_text("0123456789abcdef0123-Aa1")
    assert main(args) == 0
    assert '"changed": true' in capsys.readouterr().out
    assert main(args) == 0
    assert capsys.readouterr().out.strip() == '{"changed": false, "what": []}'
