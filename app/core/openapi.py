"""OpenAPI: every operation documents its problem+json refusals, so clients and fuzzers know them."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "pattern": "^urn:seclab:problem:[a-z-]+$"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "request_id": {"type": ["string", "null"]},
    },
    "additionalProperties": True,
}
COMMON = {
    "400": "malformed request", "401": "missing or invalid bearer token", "403": "role or tenant not allowed",
    "404": "not found (also for other users' and tenants' objects)", "405": "method not allowed",
    "413": "body larger than limits.body_max_bytes", "415": "body is not application/json",
    "422": "validation failed", "429": "rate limited (Retry-After)", "500": "internal error (generic)",
    "503": "a dependency is unavailable",
}
PUBLIC = {"/healthz", "/readyz"}


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
        ref = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path, item in schema.get("paths", {}).items():
            for op in item.values():
                if not isinstance(op, dict) or "responses" not in op:
                    continue
                if path not in PUBLIC:
                    op["security"] = [{"bearer": []}]
                for code, desc in COMMON.items():
                    if path in PUBLIC and code not in ("500", "503"):
                        continue
                    op["responses"][code] = {"description": desc, "content": ref}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
