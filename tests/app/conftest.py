"""Fixtures of the app's live tests: the PostgreSQL and Redis named by the lab's env file (never SQLite/fakeredis).

Every test that uses them carries `pytest.mark.integration` itself (the live marker: `-m "not integration"`
selects the unit tests), whatever folder it is in; unit tests of the app live beside them and never
touch these fixtures.

Self-contained on a freshly provisioned DB: the session runs `sync` (tenants, grants, migrations)
through app.db.admin itself, and every test user is unique to the session, so data from earlier
runs cannot make a test pass or fail.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from app.ai.screening import Verdict
from app.core.config import Settings, env_file_path, load_settings
from app.db import admin
from app.db.connect import connect_owner, ssl_context
from app.main import create_app
from labdef import LabDefinition
from tests.conftest import AUDIENCE, ISSUER, FakeIssuer


def _env_file() -> Path:
    path = env_file_path()
    if not path.is_file():
        if os.environ.get("SECLAB_REQUIRE_LAB") == "1":
            pytest.fail(f"lab not provisioned: run ./lab up ({path} missing, SECLAB_REQUIRE_LAB=1)")
        pytest.skip("lab not provisioned: run ./lab up")
    return path


INJECTION_MARKER = "IGNORE ALL PREVIOUS INSTRUCTIONS"


async def stand_in_screener(text: str) -> Verdict:
    """Test double for the guard: blocks one marker, flags another, allows the rest."""
    if INJECTION_MARKER in text:
        return Verdict(decision="block", reasons=["test:marker"], score=1.0)
    if "FLAG ME" in text:
        return Verdict(decision="flag", reasons=["test:flag"], score=0.5)
    return Verdict(decision="allow", reasons=[], score=0.0)


@pytest.fixture(scope="session")
def settings() -> Settings:
    base = load_settings(_env_file())
    # Tokens in these tests come from the in-process issuer, not the lab's IdP.
    return base.model_copy(update={"oidc_issuer": ISSUER, "oidc_audience": AUDIENCE, "oidc_jwks_url": None})


@pytest.fixture(scope="session")
def lab(settings: Settings) -> LabDefinition:
    return settings.load_lab()


@pytest.fixture(scope="session")
async def synced(settings: Settings) -> list[str]:
    return await admin.sync(settings)


@pytest.fixture(scope="session")
def issuer(signing_key: Any) -> FakeIssuer:
    return FakeIssuer([signing_key])


@pytest.fixture(scope="session")
def run_id() -> str:
    return uuid.uuid4().hex[:8]


# The session's tokens outlive the session: `late` tests (tests/app/test_restore.py) run after
# the rest of `./lab test`, long after the IdP's 300 s default, and an expired token fails them with a
# 401 before they test anything. Expiry itself is tested with tokens minted for it.
SESSION_TOKEN_LIFETIME_S = 12 * 3600


@pytest.fixture(scope="session")
def users(run_id: str, make_token: Callable[..., str]) -> dict[str, dict[str, str]]:
    """Session-unique subjects; headers ready to use for the whole session."""
    spec = {
        "alice": (["user"], "acme"),
        "carol": (["user", "tenant-admin"], "acme"),
        "bob": (["user"], "globex"),
        "admin": (["lab-admin"], None),
        "notenant": (["user"], None),
        "fuzzer": (["user", "tenant-admin"], "acme"),
        # Own subject for the event-stream tests: alice's per-user rate limit belongs to the pipeline tests.
        "dana": (["user"], "acme"),
    }
    out = {}
    for name, (roles, tenant) in spec.items():
        sub = f"{name}-{run_id}"
        out[name] = {"sub": sub,
                     "Authorization": f"Bearer {make_token(sub, roles, tenant, lifetime=SESSION_TOKEN_LIFETIME_S)}"}
    return out


def auth(users: dict[str, dict[str, str]], name: str, **extra: str) -> dict[str, str]:
    return {"Authorization": users[name]["Authorization"], **extra}


TEST_CANARY = "SECLAB-CANARY-integration-0123456789"


class InProcessWorker:
    """STAND-IN for the Celery worker: runs the real task body (`app.worker.tasks.answer`) in-process
    with the real PostgreSQL `ReplyStore` and a gateway over the deterministic provider.

    `mode`: "run" answers at once (the broker took the task), "drop" returns False (broker down: the
    message stays pending for the sweeper), "hold" takes the task but runs nothing until `release()`."""

    def __init__(self, store: Any) -> None:
        from app.ai.gateway import Gateway, ProviderSlot
        from app.ai.output_checks import OutputChecker
        from app.ai.providers.deterministic import DeterministicProvider
        from app.worker.runtime import Runtime

        system = f"test system prompt {TEST_CANARY}"
        gateway = Gateway([ProviderSlot(DeterministicProvider(), pseudonymize_pii=False)],
                          checker=OutputChecker(canary=TEST_CANARY, system_prompt=system), system_prompt=system,
                          max_output_tokens=64)
        self.runtime = Runtime(gateway=gateway, store=store, redis=None)
        self.mode = "run"
        self.enqueued: list[tuple[str, Any]] = []
        self.held: list[tuple[str, Any]] = []
        self.outcomes: list[str] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    async def enqueue(self, tenant: str, message_id: Any) -> bool:
        if self.mode == "drop":
            return False
        self.enqueued.append((tenant, message_id))
        if self.mode == "hold":
            self.held.append((tenant, message_id))
        else:
            self.spawn(tenant, message_id)
        return True

    def spawn(self, tenant: str, message_id: Any) -> asyncio.Task[Any]:
        from app.worker.tasks import answer

        async def run() -> None:
            self.outcomes.append(await answer(tenant, str(message_id), rt=self.runtime))

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def release(self) -> None:
        held, self.held = self.held, []
        for tenant, mid in held:
            self.spawn(tenant, mid)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks))


@pytest.fixture(scope="session")
async def reply_store(settings: Settings, synced: list[str]) -> AsyncIterator[Any]:
    from app.crud.worker import make_reply_store

    store = await make_reply_store(settings)  # the production default: every tenant the database knows
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture(scope="session")
def inproc_worker(reply_store: Any) -> InProcessWorker:
    return InProcessWorker(reply_store)


@pytest.fixture
async def worker(inproc_worker: InProcessWorker) -> AsyncIterator[InProcessWorker]:
    inproc_worker.mode = "run"
    yield inproc_worker
    inproc_worker.mode = "run"
    inproc_worker.release()  # nothing accepted stays unanswered after a test
    await inproc_worker.drain()


@pytest.fixture(scope="session")
async def app(settings: Settings, lab: LabDefinition, synced: list[str], issuer: FakeIssuer,
              inproc_worker: InProcessWorker) -> AsyncIterator[Any]:
    application = create_app(settings=settings, lab=lab, http_client=issuer.client(), screener=stand_in_screener,
                             enqueuer=inproc_worker.enqueue)
    async with application.router.lifespan_context(application):
        yield application
        await inproc_worker.drain()


@pytest.fixture(scope="session")
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    # A session-unique client address, so per-address rate-limit windows of earlier runs don't interfere.
    transport = httpx.ASGITransport(app=app, client=(f"2001:db8::{uuid.uuid4().hex[:4]}", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
        yield c


@pytest.fixture
async def owner(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    conn = await connect_owner(settings)
    try:
        yield conn
    finally:
        await conn.close()


async def connect_tenant(settings: Settings, tenant: str) -> asyncpg.Connection:
    """A raw connection logged in as `tenant_<tenant>`, the way app/db/pools.py logs in."""
    from app.db.pools import tenant_key
    from app.db.tenancy import tenant_password

    return await asyncpg.connect(
        host=settings.db_host, port=settings.db_port, user=f"tenant_{tenant}", database=settings.db_name,
        password=tenant_password(tenant_key(settings), tenant), ssl=ssl_context(settings),
    )


@pytest.fixture
async def acme_conn(settings: Settings, synced: list[str]) -> AsyncIterator[asyncpg.Connection]:
    """acme's own login session: what an injection in an acme request would hold."""
    conn = await connect_tenant(settings, "acme")
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def app_conn(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A raw connection as seclab_app, for SQL-level isolation tests."""
    pw = settings.db_password()
    conn = await asyncpg.connect(
        host=settings.db_host, port=settings.db_port, user=settings.db_user, database=settings.db_name,
        password=pw.get_secret_value() if pw else None, ssl=ssl_context(settings),
    )
    try:
        yield conn
    finally:
        await conn.close()
