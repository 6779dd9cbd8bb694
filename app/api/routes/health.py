"""Liveness, readiness and metrics (the edge keeps /metrics unreachable from outside)."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from app.core import metrics
from app.core.problems import MEDIA_TYPE, problem_body
from app.models.api import HealthOut, ReadyOut

router = APIRouter(tags=["health"])
log = logging.getLogger("seclab.app")


@router.get("/healthz", response_model=HealthOut)
async def healthz() -> HealthOut:
    """The process answers; says nothing about dependencies (so a DB outage does not restart it)."""
    return HealthOut(status="ok")


async def _check_postgres(request: Request) -> bool:
    try:
        conn = request.app.state.orm.connections.get("default")
        await asyncio.wait_for(conn.execute_query("SELECT 1"), timeout=2.0)
        return True
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", never a 500
        log.warning("readiness: postgres down", extra={"error.type": type(exc).__name__})
        return False


async def _check_redis(request: Request) -> bool:
    try:
        return bool(await asyncio.wait_for(request.app.state.redis.ping(), timeout=2.0))
    except Exception as exc:  # noqa: BLE001 - same: report, never raise
        log.warning("readiness: redis down", extra={"error.type": type(exc).__name__})
        return False


@router.get("/readyz", response_model=ReadyOut, responses={503: {"description": "problem+json naming what is down"}})
async def readyz(request: Request) -> Response:
    pg, rd = await asyncio.gather(_check_postgres(request), _check_redis(request))
    checks = {"postgres": pg, "redis": rd}
    if all(checks.values()):
        return JSONResponse(ReadyOut(status="ready", checks=checks).model_dump())
    down = [k for k, ok in checks.items() if not ok]
    body = problem_body(503, "upstream-unavailable", f"not ready: {', '.join(down)} unreachable", checks=checks, down=down)
    return JSONResponse(body, status_code=503, media_type=MEDIA_TYPE)


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    data, ctype = metrics.render()
    return Response(content=data, media_type=ctype)
