"""Dependencies shared by the routers: settings, tenant transaction, owner connection, rate limits, paging."""


import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any
from uuid import UUID

import asyncpg
from fastapi import Depends, Query, Request
from tortoise.exceptions import DBConnectionError, OperationalError

from app.ai.budget import TokenBudget
from app.ai.screening import Verdict
from app.core.config import Settings
from app.core.pagination import decode_cursor
from app.core.problems import Problem
from app.core.ratelimit import RateLimiter, client_address
from app.core.security import TENANT_RE, Principal, get_principal, require_role
from app.db.connect import connect_owner
from app.db.pools import DatabaseUnavailable, TenantPools, UnknownTenant, orm_transaction
from labdef import LabDefinition

log = logging.getLogger("seclab.app")


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_lab(request: Request) -> LabDefinition:
    return request.app.state.lab


def get_budget(request: Request) -> TokenBudget | None:
    return getattr(request.app.state, "budget", None)


Enqueuer = Callable[[str, UUID], Awaitable[bool]]


def get_enqueuer(request: Request) -> Enqueuer:
    return request.app.state.enqueue_reply


def get_screener(request: Request) -> Callable[[str], Awaitable[Verdict]]:
    return request.app.state.screener


SettingsDep = Annotated[Settings, Depends(get_settings)]
LabDep = Annotated[LabDefinition, Depends(get_lab)]
BudgetDep = Annotated[TokenBudget | None, Depends(get_budget)]
EnqueueDep = Annotated[Enqueuer, Depends(get_enqueuer)]
ScreenerDep = Annotated[Callable[[str], Awaitable[Verdict]], Depends(get_screener)]


def _too_many(retry_after: int, what: str) -> Problem:
    return Problem(429, "rate-limited", f"{what} rate limit exceeded", headers={"Retry-After": str(retry_after)})


async def limit_by_address(request: Request, lab: LabDep, settings: SettingsDep) -> None:
    """Runs before token validation, so token guessing is limited too."""
    limiter: RateLimiter = request.app.state.rate_limiter
    peer = request.client.host if request.client else None
    addr = client_address(peer, request.headers.get("x-forwarded-for"), settings.is_trusted_proxy)
    d = await limiter.hit("addr", addr, lab.limits.rate_limits.per_address_per_minute)
    if not d.allowed:
        raise _too_many(d.retry_after_s, "per-address")


def _query_names(dependant: Any) -> set[str]:
    names = {p.alias for p in getattr(dependant, "query_params", [])}
    for sub in getattr(dependant, "dependencies", []):
        names |= _query_names(sub)
    return names


def reject_unknown_query(request: Request) -> None:
    """Unknown query parameters are a 422, like unknown body fields: a typo or a parameter-pollution
    probe should not be silently ignored (OWASP API3:2023, ASVS 4.0.3 V5.1.1 HTTP parameter pollution)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    allowed = getattr(route, "_seclab_query_names", None)
    if allowed is None:
        allowed = frozenset(_query_names(dependant))
        route._seclab_query_names = allowed  # type: ignore[union-attr]
    unknown = sorted({k for k in request.query_params if k not in allowed})
    if unknown:
        raise Problem(422, "validation", "unknown query parameter(s): " + ", ".join(repr(k)[:40] for k in unknown[:5]))


def authorized(role: str, *, tenant: bool) -> Any:
    """Role check (403) then the per-user rate limit (429)."""
    role_dep = require_role(role, tenant=tenant)

    async def _dep(request: Request, lab: LabDep, principal: Annotated[Principal, Depends(role_dep)]) -> Principal:
        limiter: RateLimiter = request.app.state.rate_limiter
        d = await limiter.hit("user", principal.sub, lab.limits.rate_limits.per_user_per_minute)
        if not d.allowed:
            raise _too_many(d.retry_after_s, "per-user")
        return principal

    return _dep


ChatUser = Annotated[Principal, Depends(authorized("user", tenant=True))]
TenantAdmin = Annotated[Principal, Depends(authorized("tenant-admin", tenant=True))]
LabAdmin = Annotated[Principal, Depends(authorized("lab-admin", tenant=False))]


async def _enter(cm: AbstractAsyncContextManager[Any]) -> Any:
    """Open a tenant transaction; a database that cannot be reached is 503, a tenant that is gone 403."""
    try:
        return await cm.__aenter__()
    except UnknownTenant:
        # Unknown or removed tenant: its login role is gone.
        raise Problem(403, "forbidden", "unknown tenant") from None
    except (DatabaseUnavailable, DBConnectionError, OSError, asyncpg.InterfaceError, TimeoutError) as exc:
        log.warning("database unavailable", extra={"error.type": type(exc).__name__})
        raise Problem(503, "upstream-unavailable", "the database is unavailable") from None
    except (OperationalError, asyncpg.PostgresError) as exc:
        cause = exc.__cause__ or exc
        if isinstance(cause, (asyncpg.InvalidParameterValueError, asyncpg.InsufficientPrivilegeError)):
            # Unknown or deleted tenant: its role is gone or no longer granted to the app.
            log.info("tenant switch refused", extra={"error.type": type(cause).__name__})
            raise Problem(403, "forbidden", "unknown tenant") from None
        log.warning("database unavailable", extra={"error.type": type(cause).__name__})
        raise Problem(503, "upstream-unavailable", "the database is unavailable") from None


def _tenant_of(principal: Principal) -> str:
    if principal.tenant is None or not TENANT_RE.match(principal.tenant):
        raise Problem(403, "forbidden", "the token carries no valid tenant claim")
    return principal.tenant


async def tenant_db(request: Request, principal: Annotated[Principal, Depends(get_principal)]) -> AsyncIterator[Any]:
    """The request's one transaction, on a connection logged in as the caller's tenant role (app/db/pools.py).

    Exits (commit or rollback) before the response is sent (scope="function"), so a 201 is never
    returned for a write that did not commit.
    """
    cm = orm_transaction(request.app.state.orm, request.app.state.tenant_pools, _tenant_of(principal))
    tx = await _enter(cm)
    try:
        yield tx
    except BaseException as exc:
        if not await cm.__aexit__(type(exc), exc, exc.__traceback__):
            raise
    else:
        await cm.__aexit__(None, None, None)


class TenantTransactions:
    """Short tenant transactions on demand, for a route that must COMMIT before it acts.

    Why: the message route enqueues the worker's task only after the pending message is committed
    (a worker must never look for a row that is not visible yet), and its `Prefer: wait` polling must
    not hold a pooled connection while it sleeps. Each `async with txs() as db:` is one transaction
    on the tenant's own login like `tenant_db`; a failed commit is a 503, never a 500.
    """

    def __init__(self, orm: Any, pools: TenantPools, tenant: str) -> None:
        self._orm = orm
        self._pools = pools
        self.tenant = tenant

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[Any]:
        cm = orm_transaction(self._orm, self._pools, self.tenant)
        tx = await _enter(cm)
        try:
            yield tx
        except BaseException as exc:
            if not await cm.__aexit__(type(exc), exc, exc.__traceback__):
                raise
            return
        try:
            await cm.__aexit__(None, None, None)
        except (DatabaseUnavailable, DBConnectionError, OperationalError, OSError, asyncpg.PostgresError,
                asyncpg.InterfaceError) as exc:
            log.warning("commit failed", extra={"error.type": type(exc).__name__})
            raise Problem(503, "upstream-unavailable", "the database is unavailable") from None


async def tenant_transactions(
    request: Request, principal: Annotated[Principal, Depends(get_principal)]
) -> TenantTransactions:
    return TenantTransactions(request.app.state.orm, request.app.state.tenant_pools, _tenant_of(principal))


TenantDB = Annotated[Any, Depends(tenant_db, scope="function")]
TenantTxs = Annotated[TenantTransactions, Depends(tenant_transactions)]


async def owner_conn(settings: SettingsDep) -> AsyncIterator[asyncpg.Connection]:
    """A privileged connection, opened only after the lab-admin check (least privilege, ASVS 4.0.3 V4.1.3)."""
    try:
        owner_password = settings.db_owner_password()
    except OSError:  # PermissionError: the file is root-only
        owner_password = None
    if owner_password is None:
        # By default the API cannot read the owner's password at all (secrets role, root-only file).
        raise Problem(
            503,
            "admin-unavailable",
            "tenant administration is off in the API: the schema owner's credentials are root-only by "
            "design; manage tenants in lab.yml and run ./lab up, or set secrets_api_schema_owner: true",
        )
    try:
        conn = await connect_owner(settings)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        log.warning("database unavailable", extra={"error.type": type(exc).__name__})
        raise Problem(503, "upstream-unavailable", "the database is unavailable") from None
    try:
        yield conn
    finally:
        await conn.close()


OwnerConn = Annotated[asyncpg.Connection, Depends(owner_conn, scope="function")]


class Page:
    """`?limit=&cursor=`: limit bounded by lab.yml page_size_max (422 above, OWASP API4:2023)."""

    def __init__(self, limit: int, after: int | None) -> None:
        self.limit = limit
        self.after = after


async def page_params(
    lab: LabDep,
    limit: Annotated[int | None, Query(ge=1, le=1000, description="page size (<= limits.page_size_max)")] = None,
    cursor: Annotated[
        str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_-]{1,64}$", description="opaque cursor from next_cursor")
    ] = None,
) -> Page:
    size = limit if limit is not None else lab.limits.page_size_default
    if size > lab.limits.page_size_max:
        raise Problem(422, "validation", f"limit must be <= {lab.limits.page_size_max}")
    return Page(min(size, lab.limits.page_size_max), decode_cursor(cursor))


PageDep = Annotated[Page, Depends(page_params)]
