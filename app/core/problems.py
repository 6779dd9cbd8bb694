"""RFC 9457 problem+json for every error the API returns.

Why: one machine-readable shape with a stable `type` per cause lets clients, the edge and the attack
suites tell refusals apart without parsing prose, and a 500 never carries a trace (ASVS 4.0.3 V7.4.1,
OWASP Top 10 2021 A05 security misconfiguration).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from app.core.context import request_id_var

PREFIX = "urn:seclab:problem:"
MEDIA_TYPE = "application/problem+json"

TITLES: dict[str, str] = {
    "validation": "Request validation failed",
    "payload-too-large": "Payload too large",
    "unsupported-media-type": "Unsupported media type",
    "not-found": "Not found",
    "method-not-allowed": "Method not allowed",
    "unauthenticated": "Authentication required",
    "forbidden": "Forbidden",
    "rate-limited": "Too many requests",
    "prompt-injection": "Message refused by the prompt-injection guard",
    "upstream-unavailable": "A dependency is unavailable",
    "admin-unavailable": "Tenant administration is off in the API",
    "budget-exhausted": "Token budget exhausted",
    "idempotency-key-reused": "Idempotency-Key reused with a different request",
    "conflict": "Conflict",
    "internal": "Internal server error",
    "not-acceptable": "Not acceptable",
}

_STATUS_TYPES: dict[int, str] = {
    400: "validation",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation",
    429: "rate-limited",
    500: "internal",
    502: "upstream-unavailable",
    503: "upstream-unavailable",
    504: "upstream-unavailable",
}

log = logging.getLogger("seclab.app")


class Problem(Exception):
    """Raised anywhere in the app; rendered as problem+json by the handlers below."""

    def __init__(
        self,
        status: int,
        kind: str,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or kind)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra or {}


def problem_body(status: int, kind: str, detail: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PREFIX + kind,
        "title": TITLES.get(kind, kind.replace("-", " ").capitalize()),
        "status": status,
    }
    if detail:
        body["detail"] = detail
    body["request_id"] = request_id_var.get()
    body.update(extra)
    return body


def problem_response(
    status: int, kind: str, detail: str | None = None, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse(
        problem_body(status, kind, detail, **extra), status_code=status, media_type=MEDIA_TYPE, headers=headers
    )


def kind_for_status(status: int) -> str:
    return _STATUS_TYPES.get(status, "internal" if status >= 500 else "validation")


def _safe_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Location, message and type only: echoing the input back could reflect secrets or markup."""
    out = []
    for err in exc.errors()[:20]:
        loc = [str(p) if not isinstance(p, int) else p for p in err.get("loc", ())]
        out.append({"loc": loc, "msg": str(err.get("msg", ""))[:200], "type": str(err.get("type", ""))})
    return out


async def _problem_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(exc.status, exc.kind, exc.detail, headers=exc.headers, **exc.extra)


def _allowed_methods(request: Request) -> str | None:
    """`Allow` listing every method of the path (RFC 9110 §15.5.6), not just the first route's.

    Starlette reports only the first partially matching route; the OpenAPI paths know them all.
    """
    matchers = getattr(request.app.state, "_allow_matchers", None)
    if matchers is None:
        matchers = []
        for path, item in request.app.openapi().get("paths", {}).items():
            regex, _, _ = compile_path(path)
            matchers.append((regex, sorted(m.upper() for m in item if m in _HTTP_METHODS)))
        request.app.state._allow_matchers = matchers
    methods = sorted({m for regex, ms in matchers if regex.match(request.url.path) for m in ms})
    return ", ".join(methods) if methods else None


_HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


async def _http_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kind = kind_for_status(exc.status_code)
    detail = exc.detail if isinstance(exc.detail, str) and exc.status_code < 500 else None
    if exc.status_code == 400 and detail == "There was an error parsing the body":
        detail = "the body is not valid UTF-8 JSON"
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:
        allow = _allowed_methods(request)
        if allow:
            headers["Allow"] = allow
    return problem_response(exc.status_code, kind, detail, headers=headers or None)


async def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return problem_response(422, "validation", "the request does not match the schema", errors=_safe_errors(exc))


async def _unhandled_handler(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", extra={"error.type": type(exc).__name__})
    return problem_response(500, "internal", None)


def install(app: FastAPI) -> None:
    app.add_exception_handler(Problem, _problem_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(Exception, _unhandled_handler)
