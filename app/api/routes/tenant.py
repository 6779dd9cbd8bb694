"""Tenant-admin views of the caller's own tenant (the tenant transaction makes "own" a DB fact)."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import PageDep, TenantAdmin, TenantDB
from app.core.pagination import encode_cursor
from app.crud import audit, chat
from app.models.api import AuditEntryOut, AuditPage, TenantUsage, UserConversationCount

router = APIRouter(prefix="/tenant", tags=["tenant-admin"])


@router.get("/usage", response_model=TenantUsage)
async def usage(admin: TenantAdmin, db: TenantDB) -> TenantUsage:
    rows = await chat.usage_by_user(db)
    return TenantUsage(tenant=admin.tenant or "", users=[UserConversationCount(**r) for r in rows])


@router.get("/audit", response_model=AuditPage)
async def audit_log(admin: TenantAdmin, db: TenantDB, page: PageDep) -> AuditPage:
    rows, nxt = await audit.list_entries(db, page.limit, page.after)
    items = [
        AuditEntryOut(id=r.id, ts=r.ts, actor=r.actor, action=r.action, target=r.target, detail=r.detail,
                      prev_hash=r.prev_hash, hash=r.hash)
        for r in rows
    ]
    return AuditPage(items=items, next_cursor=encode_cursor(nxt) if nxt else None)
