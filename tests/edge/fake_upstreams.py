"""Test stand-ins behind the edge: a tiny API (run under uvicorn with mTLS) and a fake IdP.

Neither is the real app or IdP: they answer the routes the edge proxies, echo what the edge sent,
and return their OWN problem+json errors so the tests can prove the edge passes them unchanged.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

APP_PROBLEM = {
    "type": "urn:seclab:problem:not-found",
    "title": "Conversation not found",
    "status": 404,
    "detail": "from-the-app",
}

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


def _echo(request: Request) -> dict[str, object]:
    return {
        "path": request.url.path,
        "method": request.method,
        "x_request_id": request.headers.get("x-request-id"),
        "x_forwarded_for": request.headers.get("x-forwarded-for"),
        "x_forwarded_proto": request.headers.get("x-forwarded-proto"),
        "host": request.headers.get("host"),
    }


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ready"}


@app.get("/metrics")
async def metrics() -> JSONResponse:
    return JSONResponse({"secret_metric": 1})


@app.get("/api/v1/echo")
async def echo(request: Request) -> dict[str, object]:
    return _echo(request)


@app.get("/api/v1/conversations")
async def list_conversations(request: Request) -> JSONResponse:
    # Headers the edge must replace by its own single value.
    return JSONResponse(
        {"items": []},
        headers={
            "X-Powered-By": "fake",
            "Cache-Control": "public, max-age=600",
            "X-Frame-Options": "SAMEORIGIN",
        },
    )


@app.post("/api/v1/conversations/{cid}/messages", status_code=201)
async def post_message(cid: str, request: Request) -> dict[str, object]:
    body = await request.body()
    return {"conversation": cid, "bytes": len(body)}


@app.get("/api/v1/conversations/{cid}")
async def get_conversation(cid: str) -> JSONResponse:
    # The app's own 404 problem (with its own detail): the edge must not rewrite it.
    return JSONResponse(APP_PROBLEM, status_code=404, media_type="application/problem+json")


@app.get("/api/v1/forbidden")
async def forbidden() -> JSONResponse:
    body = {
        "type": "urn:seclab:problem:forbidden",
        "title": "Forbidden",
        "status": 403,
        "detail": "from-the-app",
    }
    return JSONResponse(body, status_code=403, media_type="application/problem+json")


@app.get("/api/v1/busy")
async def busy() -> JSONResponse:
    body = {
        "type": "urn:seclab:problem:budget-exhausted",
        "title": "Budget",
        "status": 429,
        "detail": "from-the-app",
    }
    return JSONResponse(
        body, status_code=429, media_type="application/problem+json", headers={"Retry-After": "42"}
    )


idp = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@idp.get("/realms/{realm}/.well-known/openid-configuration")
async def discovery(realm: str, request: Request) -> dict[str, object]:
    return {"issuer": f"https://{request.headers.get('x-forwarded-host')}/realms/{realm}", **_echo(request)}


@idp.post("/realms/{realm}/protocol/openid-connect/token")
async def token(realm: str) -> JSONResponse:
    return JSONResponse(
        {"access_token": "fake", "token_type": "Bearer"}, headers={"Cache-Control": "no-store"}
    )
