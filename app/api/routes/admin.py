"""Lab-admin routes: tenants (same code as `python -m app.db.admin`), audit verification, and the
edge's access check for Flower."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response, status

from app.api.deps import LabAdmin, LabDep, OwnerConn, SettingsDep, TenantTransactions
from app.core.problems import Problem
from app.core.security import LabAdmin as LabAdminRole
from app.crud import lab_views
from app.db import tenancy
from app.models.api import (
    AdminActionOut,
    AuditVerifyOut,
    EdgeRefusalList,
    EdgeRefusalOut,
    LabAuditEntryOut,
    LabAuditPage,
    RequestEventList,
    RequestEventOut,
    TenantCreate,
    TenantList,
    TenantOut,
)
from app.services import log_events
from labdef import NAME_RE
from logsearch.search import REQUEST_ID_RE

router = APIRouter(prefix="/admin", tags=["lab-admin"])
TenantName = Annotated[str, Path(pattern=NAME_RE)]


@router.get("/tenants", response_model=TenantList)
async def list_tenants(admin: LabAdmin, conn: OwnerConn) -> TenantList:
    await tenancy.ensure_lab_schema(conn)
    return TenantList(items=[TenantOut(**t) for t in await tenancy.list_tenants(conn)])


@router.post("/tenants", status_code=status.HTTP_201_CREATED, response_model=AdminActionOut)
async def create_tenant(body: TenantCreate, admin: LabAdmin, conn: OwnerConn, settings: SettingsDep) -> AdminActionOut:
    actions = await tenancy.create_tenant(conn, body.name, admin.sub, tenancy.TenantLogin.from_settings(settings))
    return AdminActionOut(changed=bool(actions), actions=actions)


@router.delete("/tenants/{name}", response_model=AdminActionOut)
async def delete_tenant(name: TenantName, admin: LabAdmin, conn: OwnerConn, settings: SettingsDep,
                        request: Request) -> AdminActionOut:
    actions = await tenancy.delete_tenant(conn, name, admin.sub, tenancy.TenantLogin.from_settings(settings))
    await request.app.state.tenant_pools.forget(name)  # this process's idle sessions of the removed role
    if not actions:
        raise Problem(404, "not-found", "no such tenant")
    return AdminActionOut(changed=True, actions=actions)


@router.get("/audit/verify", response_model=AuditVerifyOut)
async def verify_audit(admin: LabAdmin, conn: OwnerConn) -> AuditVerifyOut:
    tables, brk = await tenancy.verify_all(conn)
    return AuditVerifyOut(ok=brk is None, tables=tables, broken=brk.model_dump() if brk else None)


def _page_size(lab: LabDep, limit: int | None) -> int:
    size = limit if limit is not None else lab.limits.page_size_default
    if size > lab.limits.page_size_max:
        raise Problem(422, "validation", f"limit must be <= {lab.limits.page_size_max}")
    return size


PageLimit = Annotated[int | None, Query(ge=1, le=1000, description="page size (<= limits.page_size_max)")]


@router.get("/audit", response_model=LabAuditPage)
async def lab_audit_log(
    request: Request,
    admin: LabAdmin,
    lab: LabDep,
    limit: PageLimit = None,
    cursor: Annotated[
        str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_-]{1,64}$", description="opaque cursor from next_cursor")
    ] = None,
) -> LabAuditPage:
    """Every tenant's audit log merged, newest first: the lab-admin page's view of the attack/defence
    demo (OWASP ASVS 4.0.3 V7.1.3, read-only). Each tenant is read under its own role, never as owner."""
    def open_tenant(tenant: str) -> Any:
        return TenantTransactions(request.app.state.orm, request.app.state.tenant_pools, tenant)()

    rows, nxt = await lab_views.merged_audit(
        open_tenant, [t.name for t in lab.tenants], _page_size(lab, limit), lab_views.decode_audit_cursor(cursor)
    )
    return LabAuditPage(items=[LabAuditEntryOut(**r) for r in rows], next_cursor=nxt)


@router.get("/edge-refusals", response_model=EdgeRefusalList)
async def edge_refusals(admin: LabAdmin, lab: LabDep, limit: PageLimit = None) -> EdgeRefusalList:
    """The edge's latest own refusals (WAF, rate limits, unknown paths) with their request ids, newest first."""
    items = await lab_views.latest_refusals(lab.paths.logs, _page_size(lab, limit))
    return EdgeRefusalList(items=[EdgeRefusalOut(**i) for i in items])


@router.get("/request-events", response_model=RequestEventList,
            responses={503: {"description": "the log search engine is off or unreachable (problem+json)"}})
async def request_events(
    admin: LabAdmin,
    settings: SettingsDep,
    request_id: Annotated[str, Query(pattern=REQUEST_ID_RE.pattern, description="the edge's X-Request-ID")],
) -> RequestEventList:
    """One request followed through every service's logs (edge, WAF, app, worker, ...), oldest first:
    the centralized logs' search, read-only, lab-admin only (ASVS 4.0.3 V7.1.3, V4.1.3)."""
    items = await log_events.events_of(settings, request_id)
    return RequestEventList(request_id=request_id, items=[RequestEventOut(**i) for i in items])


# Flower shows every task and worker: lab-admin only, decided here once (OWASP A01:2021; ASVS 4.0.3 V4.1.1).
@router.get("/flower-auth", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def flower_auth(admin: LabAdminRole) -> Response:
    """The edge's `auth_request` for /flower/: 204 for a lab-admin, else the 401/403 of the token check.

    Same token validation as every route (app/core/security.py). Only the role check, not the per-user
    limit of `LabAdmin`: one Flower page is a dozen sub-requests; the edge and the router still limit
    per address (OWASP API4:2023). The edge answers 404 to clients who call this path directly."""
    return Response(status_code=status.HTTP_204_NO_CONTENT)
