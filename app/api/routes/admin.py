"""Lab-admin routes: tenants (same code as `python -m app.db.admin`), audit verification, and the
edge's access check for Flower."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status

from app.api.deps import LabAdmin, OwnerConn, SettingsDep
from app.core.problems import Problem
from app.core.security import LabAdmin as LabAdminRole
from app.db import tenancy
from app.models.api import AdminActionOut, AuditVerifyOut, TenantCreate, TenantList, TenantOut
from labdef import NAME_RE

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


# Flower shows every task and worker: lab-admin only, decided here once (OWASP A01:2021; ASVS 4.0.3 V4.1.1).
@router.get("/flower-auth", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def flower_auth(admin: LabAdminRole) -> Response:
    """The edge's `auth_request` for /flower/: 204 for a lab-admin, else the 401/403 of the token check.

    Same token validation as every route (app/core/security.py). Only the role check, not the per-user
    limit of `LabAdmin`: one Flower page is a dozen sub-requests; the edge and the router still limit
    per address (OWASP API4:2023). The edge answers 404 to clients who call this path directly."""
    return Response(status_code=status.HTTP_204_NO_CONTENT)
