"""One pure-ASGI middleware: correlation id, body limits, media type, metrics, access log, last-resort 500.

Pure ASGI (not BaseHTTPMiddleware) so it sees the body stream itself: the size limit is enforced
on the bytes actually received, chunked bodies included, before any parser runs (ASVS 4.0.3
V13.1.3 input size limits; OWASP API4:2023 unrestricted resource consumption).
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core import metrics
from app.core.context import request_id_var, request_info_var
from app.core.problems import MEDIA_TYPE, problem_body

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
"""Client ids are echoed into logs and headers: a short safe charset prevents log and header injection (ASVS V7.3.1)."""

BODY_METHODS = {"POST", "PUT", "PATCH"}
access_log = logging.getLogger("seclab.access")
app_log = logging.getLogger("seclab.app")


def route_template(scope: Scope) -> str:
    """The matched route's full template (e.g. /api/v1/conversations/{conversation_id}), never the raw path.

    FastAPI >= 0.12x keeps included routers' routes unprefixed and records the effective (prefixed)
    route in its own scope entry; older versions put the prefixed route in scope["route"].
    """
    fa = scope.get("fastapi")
    ctx = fa.get("effective_route_context") if isinstance(fa, dict) else None
    path = getattr(ctx, "path_format", None) or getattr(ctx, "path", None)
    if isinstance(path, str) and path:
        return path
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) and path else "unmatched"


def valid_request_id(value: str | None) -> str | None:
    return value if value is not None and REQUEST_ID_RE.match(value) else None


def _is_json_media_type(value: str) -> bool:
    mt = value.split(";", 1)[0].strip().lower()
    return mt == "application/json" or (mt.startswith("application/") and mt.endswith("+json"))


class _DuplicateMember(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateMember(key)
        seen[key] = value
    return seen


def duplicate_json_member(body: bytes) -> str | None:
    """The first member name that appears twice in one JSON object, else None (also for invalid JSON,
    which the route's own validation refuses). Why: parsers disagree on duplicates (first wins in some
    WAFs, last wins in Python), so `{"content": "benign", "content": "<attack>"}` can show the WAF one
    value and the app another; refusing duplicates removes the differential (OWASP API8:2023, CWE-436;
    RFC 8259 §4 says names SHOULD be unique)."""
    try:
        json.loads(body, object_pairs_hook=_refuse_duplicates)
    except _DuplicateMember as dup:
        return dup.name
    except (ValueError, RecursionError):  # invalid or absurdly nested JSON: the route's validation answers
        return None
    return None


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, body_max_bytes: Callable[[], int]) -> None:
        self.app = app
        self.body_max_bytes = body_max_bytes  # read per request: the lab definition loads in the lifespan

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        rid = valid_request_id(headers.get("x-request-id")) or uuid.uuid4().hex
        rid_token = request_id_var.set(rid)
        info: dict[str, Any] = {"user": None, "tenant": None}
        info_token = request_info_var.set(info)
        start = time.perf_counter()
        status_holder = {"status": 500, "started": False}
        method = scope.get("method", "GET")

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = True
                hdrs = list(message.get("headers", []))
                hdrs.append((b"x-request-id", rid.encode()))
                # The API never returns cacheable or sniffable content (ASVS 4.0.3 V8.2.1 no-store, V14.4.4 nosniff).
                hdrs.append((b"cache-control", b"no-store"))
                hdrs.append((b"x-content-type-options", b"nosniff"))
                message["headers"] = hdrs
            await send(message)

        try:
            refusal = None
            if method in BODY_METHODS:
                refusal, receive = await self._check_body(headers, receive)
            if refusal is not None:
                await self._send_problem(send_wrapper, *refusal)
            else:
                await self.app(scope, receive, send_wrapper)
        except Exception as exc:  # noqa: BLE001 - last resort: a generic 500 without trace (ASVS V7.4.1)
            app_log.exception("unhandled error", extra={"error.type": type(exc).__name__})
            if not status_holder["started"]:
                await self._send_problem(send_wrapper, 500, "internal", None)
        finally:
            elapsed = time.perf_counter() - start
            template = route_template(scope)
            status = str(status_holder["status"])
            metrics.REQUESTS.labels(method, template, status).inc()
            metrics.LATENCY.labels(method, template, status).observe(elapsed)
            access_log.info(
                "request",
                extra={
                    "http.request.method": method,
                    "url.path_template": template,
                    "http.response.status_code": int(status),
                    "event.duration": int(elapsed * 1e9),
                    "user.id": info.get("user"),
                    "organization.name": info.get("tenant"),
                    "event.dataset": "seclab.access",
                },
            )
            request_info_var.reset(info_token)
            request_id_var.reset(rid_token)

    async def _check_body(
        self, headers: dict[str, str], receive: Receive
    ) -> tuple[tuple[int, str, str] | None, Receive]:
        """Buffer at most body_max_bytes + 1 bytes; refuse early on Content-Length or media type."""
        limit = self.body_max_bytes()
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                return (400, "validation", "invalid Content-Length"), receive
            if int(declared) > limit:
                return (413, "payload-too-large", f"the body exceeds {limit} bytes"), receive
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return (413, "payload-too-large", f"the body exceeds {limit} bytes"), receive
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        ctype = headers.get("content-type")
        if body and (ctype is None or not _is_json_media_type(ctype)):
            return (415, "unsupported-media-type", "send the body as application/json"), receive
        if body and (duplicate := duplicate_json_member(body)) is not None:
            return (422, "validation", f"the JSON member {duplicate[:64]!r} appears more than once"), receive
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return None, replay

    @staticmethod
    async def _send_problem(send: Send, status: int, kind: str, detail: str | None) -> None:
        payload = json.dumps(problem_body(status, kind, detail)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", MEDIA_TYPE.encode()), (b"content-length", str(len(payload)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})
