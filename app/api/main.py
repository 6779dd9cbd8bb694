"""The `/api/v1` router: the address rate limit runs first on every API route, then the query check."""

from fastapi import APIRouter, Depends

from app.api.deps import limit_by_address, reject_unknown_query
from app.api.routes import admin, chat, message_events, tenant

api_router = APIRouter(prefix="/api/v1", dependencies=[Depends(limit_by_address), Depends(reject_unknown_query)])
api_router.include_router(chat.router)
api_router.include_router(message_events.router)
api_router.include_router(tenant.router)
api_router.include_router(admin.router)
