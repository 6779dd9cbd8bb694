from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.core.config import load_settings
from labdef import as_vars, load

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for k in ("SECLAB_DB_PORT", "SECLAB_DB_PASSWORD_FILE", "SECLAB_LAB_FILE", "SECLAB_TRUSTED_PROXIES"):
        monkeypatch.delenv(k, raising=False)
    secret = tmp_path / "db_app"
    secret.write_text("s3cr3t-value\n")
    lab = tmp_path / "lab.json"
    lab.write_text(json.dumps(as_vars(load(ROOT / "lab.yml"))))
    env = tmp_path / "app.env"
    env.write_text(
        f"SECLAB_DB_PORT=6543\nSECLAB_DB_PASSWORD_FILE={secret}\nSECLAB_LAB_FILE={lab}\n"
        "SECLAB_TRUSTED_PROXIES=127.0.0.1, 10.0.0.0/8\nSECLAB_LOG_LEVEL=debug\n"
    )
    return env


def test_env_file_read_and_secret_from_file(env_file: Path) -> None:
    s = load_settings(env_file)
    assert s.db_port == 6543 and s.log_level == "DEBUG"
    pw = s.db_password()
    assert pw is not None and pw.get_secret_value() == "s3cr3t-value"
    assert "s3cr3t" not in repr(s) and "s3cr3t" not in repr(pw)


def test_environment_overrides_file(env_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECLAB_DB_PORT", "7000")
    assert load_settings(env_file).db_port == 7000


def test_lab_definition_parsed(env_file: Path) -> None:
    lab = load_settings(env_file).load_lab()
    assert lab.tenant_names() == ["acme", "globex"]
    assert lab.limits.rate_limits.per_user_per_minute >= 1


def test_trusted_proxies(env_file: Path) -> None:
    s = load_settings(env_file)
    assert s.is_trusted_proxy("127.0.0.1") and s.is_trusted_proxy("10.9.8.7")
    assert not s.is_trusted_proxy("203.0.113.1") and not s.is_trusted_proxy("not-an-ip")
    assert not s.is_trusted_proxy(None)


def test_jwks_url_defaults_to_keycloak_path(env_file: Path) -> None:
    s = load_settings(env_file).model_copy(update={"oidc_issuer": "http://idp/realms/seclab", "oidc_jwks_url": None})
    assert s.jwks_url == "http://idp/realms/seclab/protocol/openid-connect/certs"


def test_missing_env_file_uses_defaults(tmp_path: Path) -> None:
    assert load_settings(tmp_path / "missing.env").db_name == "seclab"
