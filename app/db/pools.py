"""Per-tenant login roles: one small asyncpg pool per tenant, logged in AS that tenant's role.

Why: with one shared login role (`seclab_app`) and `SET ROLE tenant_x`, PostgreSQL checks a later
`SET ROLE tenant_y` against the *session* user, so SQL an attacker fully controls (an injection) could
switch tenants. A session that logged in as `tenant_acme` has nowhere to go: `SET ROLE` only reaches
roles tenant_acme is a member of (none with privileges), `SET SESSION AUTHORIZATION` needs a superuser,
`RESET ROLE` returns to tenant_acme itself, and a `search_path` change finds schemas it has no USAGE on
(OWASP API1:2023 BOLA, ASVS 4.0.3 V4.1.3 least privilege, V4.2.1).

Each tenant's password is HMAC-SHA256(`db_tenant_key`, "tenant_<name>"): one 256-bit key generated at
provisioning (`paths.secrets/db_tenant_key`, 0600 seclab) yields a distinct SCRAM secret per tenant, so
a tenant created later (admin CLI or API) needs no new file and a removed tenant leaves none behind.
The server only ever sees SCRAM verifiers (app/db/admin.py `scram_verifier`), never the password.

Cost bound: pools are created on a tenant's first request, hold at most `per_tenant_max` connections,
close a connection idle for `idle_s` (min_size 0: an idle tenant holds no connection at all), and at
most `max_pools` pools exist (the least recently used idle one is closed first). The role itself has a
CONNECTION LIMIT, so one tenant cannot exhaust `max_connections` (OWASP API4:2023).

The app and the worker both take their connection from `TenantPools.connection` (the worker through
`transaction`, the API through `orm_transaction`, a Tortoise view of the same connection): it is the one
tenant switch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from tortoise.backends.asyncpg.client import AsyncpgDBClient, TransactionWrapper
from tortoise.context import _current_context  # per-task, unlike TortoiseContext.__enter__'s shared token

from app.core.config import Settings
from app.db.connect import app_credentials
from app.db.tenancy import TENANTS_GROUP, tenant_ident, tenant_password
from labdef import NAME_RE

log = logging.getLogger("seclab.db.pools")

# Tenants = login roles in the marker group seclab_tenants (pg_roles/pg_auth_members are readable by
# every role, so the catalog login seclab_app can list them without any tenant right).
TENANT_ROLES_SQL = (
    "SELECT substr(r.rolname, 8) AS name FROM pg_auth_members m"
    " JOIN pg_roles r ON r.oid = m.member JOIN pg_roles g ON g.oid = m.roleid"
    " WHERE g.rolname = $1 AND r.rolcanlogin AND r.rolname ~ $2"
    " ORDER BY 1"
)
# `tenant_` + the lab.yml tenant-name rule (labdef.NAME_RE), passed as a parameter: the pattern is written once.
TENANT_ROLE_RE = "^tenant_" + NAME_RE.removeprefix("^")

CONNECT_ERRORS: tuple[type[BaseException], ...] = (
    OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError, asyncpg.TooManyConnectionsError,
)
CLOSE_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, *CONNECT_ERRORS)
LOGIN_REFUSED: tuple[type[BaseException], ...] = (
    asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError,
)


class DatabaseUnavailable(Exception):
    """PostgreSQL could not be reached (refused, reset, timeout, too many connections): transient.

    `dlq_category` tells `app.worker.dlq.categorize` what this is: a bare OSError would otherwise be
    `unknown` and dead-lettered at once, although the database is just restarting."""

    dlq_category = "database"


class UnknownTenant(Exception):
    """The tenant's login was refused: its role is gone (removed tenant) or never existed.

    `dlq_category` validation: retrying a removed tenant's task cannot help."""

    dlq_category = "validation"


def tenant_key(settings: Settings) -> bytes:
    secret = settings.db_tenant_key()
    if secret is None:
        raise RuntimeError("SECLAB_DB_TENANT_KEY_FILE is not set: tenant logins cannot be derived")
    return secret.get_secret_value().encode()


@dataclass
class _Slot:
    pool: asyncpg.Pool
    in_use: int = 0
    last_used: float = field(default_factory=time.monotonic)


async def _check_session(conn: asyncpg.Connection) -> None:
    """Runs once per new connection: the session is the tenant's own, nothing else."""
    user, session_user = await conn.fetchrow("SELECT current_user, session_user")
    if user != session_user or not str(user).startswith("tenant_"):
        raise asyncpg.InsufficientPrivilegeError(f"unexpected session role {user!r}")


class TenantPools:
    """Lazily created, bounded asyncpg pools, one per tenant, each logged in as `tenant_<name>`.

    One instance per event loop (the API's lifespan, each worker process)."""

    def __init__(self, settings: Settings, *, application_name: str, per_tenant_max: int | None = None,
                 max_pools: int | None = None, idle_s: float | None = None) -> None:
        self._settings = settings
        self._key: bytes | None = None  # read on first use: the app starts (and answers 503) without it
        self._app_name = application_name
        self.per_tenant_max = per_tenant_max or settings.db_tenant_pool_max
        self.max_pools = max_pools or settings.db_tenant_pools_max
        self.idle_s = idle_s if idle_s is not None else settings.db_tenant_pool_idle_s
        self._slots: OrderedDict[str, _Slot] = OrderedDict()
        self._lock = asyncio.Lock()
        self._closing: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ pools

    def _connect_args(self, tenant: str) -> dict[str, Any]:
        creds = app_credentials(self._settings)  # host, port, database, TLS (client cert: the app's)
        ident = tenant_ident(tenant)
        if self._key is None:
            try:
                self._key = tenant_key(self._settings)
            except (OSError, RuntimeError) as exc:
                log.error("tenant login key unreadable", extra={"error.type": type(exc).__name__})
                raise DatabaseUnavailable("tenant login key unreadable") from None
        creds.update(user=ident, password=tenant_password(self._key, tenant))
        return creds

    async def _new_pool(self, tenant: str) -> asyncpg.Pool:
        ident = tenant_ident(tenant)
        return await asyncpg.create_pool(
            **self._connect_args(tenant), min_size=0, max_size=self.per_tenant_max, timeout=5,
            command_timeout=30, max_inactive_connection_lifetime=self.idle_s, init=_check_session,
            server_settings={"application_name": self._app_name, "search_path": ident},
        )

    def _close_later(self, tenant: str, slot: _Slot) -> None:
        task = asyncio.get_running_loop().create_task(self._close_slot(tenant, slot))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    @staticmethod
    async def _close_slot(tenant: str, slot: _Slot) -> None:
        try:
            await asyncio.wait_for(slot.pool.close(), 10)
        except CLOSE_ERRORS:
            slot.pool.terminate()
        log.debug("tenant pool closed", extra={"tenant": tenant})

    async def _slot(self, tenant: str) -> _Slot:
        tenant_ident(tenant)  # TenantNameError (ValueError) before anything else
        async with self._lock:
            slot = self._slots.get(tenant)
            if slot is None:
                while len(self._slots) >= self.max_pools:
                    victim = next((t for t, s in self._slots.items() if s.in_use == 0), None)
                    if victim is None:
                        break  # every pool is busy: exceed the bound briefly rather than fail a request
                    self._close_later(victim, self._slots.pop(victim))
                slot = _Slot(await self._new_pool(tenant))  # min_size 0: no connection opened yet
                self._slots[tenant] = slot
            self._slots.move_to_end(tenant)
            slot.in_use += 1
            slot.last_used = time.monotonic()
            return slot

    async def forget(self, tenant: str) -> None:
        """Close a tenant's pool (after its removal, or when its login is refused)."""
        async with self._lock:
            slot = self._slots.pop(tenant, None)
        if slot is not None:
            if slot.in_use:
                self._close_later(tenant, slot)
            else:
                await self._close_slot(tenant, slot)

    @asynccontextmanager
    async def connection(self, tenant: str) -> AsyncIterator[asyncpg.Connection]:
        """A connection logged in as the tenant's role (no transaction opened)."""
        slot = await self._slot(tenant)
        refused = False
        try:
            try:
                conn = await slot.pool.acquire()
            except LOGIN_REFUSED:
                refused = True
                log.info("tenant login refused", extra={"tenant": tenant})
                raise UnknownTenant(tenant) from None
            except CONNECT_ERRORS as exc:
                raise DatabaseUnavailable(type(exc).__name__) from None
            try:
                yield conn
            finally:
                await slot.pool.release(conn)
        finally:
            slot.in_use -= 1
            slot.last_used = time.monotonic()
            if refused:
                await self.forget(tenant)

    @asynccontextmanager
    async def transaction(self, tenant: str) -> AsyncIterator[asyncpg.Connection]:
        """One transaction on the tenant's own login: the one tenant switch of the API and the worker."""
        async with self.connection(tenant) as conn:
            try:
                async with conn.transaction():
                    yield conn
            except CONNECT_ERRORS as exc:
                raise DatabaseUnavailable(type(exc).__name__) from None

    # ------------------------------------------------------------------ catalog, stats, close

    async def known_tenants(self) -> list[str]:
        """Every tenant with a login role (lab.yml's and those created later), via the catalog login."""
        try:
            conn = await asyncpg.connect(**app_credentials(self._settings), timeout=5,
                                         server_settings={"application_name": self._app_name})
        except CONNECT_ERRORS as exc:
            raise DatabaseUnavailable(type(exc).__name__) from None
        try:
            rows = await conn.fetch(TENANT_ROLES_SQL, TENANTS_GROUP, TENANT_ROLE_RE)
        finally:
            await conn.close()
        return [r["name"] for r in rows]

    def stats(self) -> dict[str, dict[str, int]]:
        """Per tenant: connections open and idle (the pool cost, measured by tools/tenant_pools.py)."""
        return {t: {"size": s.pool.get_size(), "idle": s.pool.get_idle_size(), "in_use": s.in_use}
                for t, s in self._slots.items()}

    async def close(self) -> None:
        async with self._lock:
            slots, self._slots = list(self._slots.items()), OrderedDict()
        await asyncio.gather(*(self._close_slot(t, s) for t, s in slots), return_exceptions=True)
        if self._closing:
            await asyncio.gather(*list(self._closing), return_exceptions=True)


# ---------------------------------------------------------------- the API's view: a Tortoise transaction


class _OneConnection(AsyncpgDBClient):
    """A Tortoise client over ONE connection the tenant pool lent us (Tortoise never opens its own)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        super().__init__(connection_name="default")
        self._connection = conn


@asynccontextmanager
async def orm_transaction(orm: Any, pools: TenantPools, tenant: str) -> AsyncIterator[Any]:
    """The API's tenant transaction: a connection of the tenant's pool, as a Tortoise transaction client
    (for `using_db=`), also current as "default" so a query that forgot `using_db` stays in the tenant.

    `orm` is the app's TortoiseContext (model registry); set per task, not shared (TortoiseContext.__enter__)."""
    token = _current_context.set(orm)
    try:
        async with pools.connection(tenant) as conn:
            tx = TransactionWrapper(_OneConnection(conn))
            current = orm.connections.set("default", tx)
            try:
                await tx.begin()
                try:
                    yield tx
                except BaseException:
                    if not tx._finalized:
                        await tx.rollback()
                    raise
                if not tx._finalized:
                    await tx.commit()
            finally:
                orm.connections.reset(current)
    finally:
        _current_context.reset(token)
