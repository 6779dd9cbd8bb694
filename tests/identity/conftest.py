"""Fixtures for the identity tests: the lab's realm, a provisioned stand-in in a temp dir, a fake clock."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher

import labdef
from labdef import totp
from labdef.realm import build_realm_export
from seclab.idp.issuer import Credentials, Issuer
from seclab.idp.keys import KeyStore
from seclab.idp.main import create_app
from seclab.idp.provision import provision

BASE = "http://idp.test"
REALM_PATH = "/realms/seclab/protocol/openid-connect"


class Clock:
    """Injected time: tests age tokens and lockouts without sleeping."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now  # starts at real time: the app checks iat/exp itself

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class StandIn:
    lab: labdef.LabDefinition
    issuer: Issuer
    client: httpx.AsyncClient
    clock: Clock
    passwords: dict[str, str]
    secrets_dir: Path
    keys: KeyStore

    async def password_grant(self, user: str, password: str | None = None, **extra: str) -> httpx.Response:
        data = {"grant_type": "password", "client_id": self.lab.identity.cli_client_id, "username": user,
                "password": self.passwords[user] if password is None else password, "scope": "openid", **extra}
        if password is None and "lab-admin" in self.lab.user(user).roles and "totp" not in extra:
            data["totp"] = self.totp(user)
        return await self.client.post(f"{REALM_PATH}/token", data=data)

    def totp(self, user: str, offset_steps: int = 0) -> str:
        seed = (self.secrets_dir / "users" / f"{user}.totp").read_text().strip()
        return totp.code(seed, int(self.clock() // 30) + offset_steps)

    def probe_secret(self) -> str:
        return (self.secrets_dir / "idp" / "clients" / "seclab-probe.secret").read_text().strip()


@pytest.fixture(scope="session")
def lab() -> labdef.LabDefinition:
    return labdef.load(labdef.DEFAULT_PATH)


@pytest.fixture(scope="session")
def realm_export(lab: labdef.LabDefinition) -> dict:
    return build_realm_export(lab)


@pytest.fixture(scope="session")
def provisioned(lab: labdef.LabDefinition, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """Provision once per session (keys are slow to make): secrets dir, state dir, passwords."""
    root = tmp_path_factory.mktemp("idp")
    secrets_dir, state_dir = root / "secrets", root / "state"
    (secrets_dir / "users").mkdir(parents=True)
    passwords = {}
    for u in lab.users:
        pw = secrets.token_hex(16) + "-Aa1"  # the shape the secrets role generates
        (secrets_dir / "users" / f"{u.username}.password").write_text(pw)
        passwords[u.username] = pw
    KeyStore(state_dir / "keys", bits=2048).ensure()
    cheap = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)  # tests only: fast hashes
    provision(lab, secrets_dir=secrets_dir, state_dir=state_dir, hasher=cheap)
    return secrets_dir, state_dir, passwords


@pytest.fixture
async def standin(lab: labdef.LabDefinition, realm_export: dict, provisioned: tuple[Path, Path, dict[str, str]],
                  tmp_path: Path) -> AsyncIterator[StandIn]:
    secrets_dir, state_dir, passwords = provisioned
    # A private copy of the keys per test: rotation tests must not leak into other tests.
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir(mode=0o700)
    for f in (state_dir / "keys").iterdir():
        (keys_dir / f.name).write_bytes(f.read_bytes())
    keys = KeyStore(keys_dir, bits=2048)
    clock = Clock()
    issuer = Issuer(realm_export, BASE, keys, Credentials.load(state_dir / "credentials.json"), clock=clock)
    transport = httpx.ASGITransport(app=create_app(issuer))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield StandIn(lab, issuer, client, clock, passwords, secrets_dir, keys)
