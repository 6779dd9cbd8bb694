"""Per-request context (correlation id, user, tenant) shared by logging, errors and metrics.

A mutable dict per request (not one ContextVar per field) so values set in a dependency are seen by
the middleware's access log even if a framework layer copied the context in between.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("seclab_request_id", default=None)
request_info_var: ContextVar[dict[str, Any] | None] = ContextVar("seclab_request_info", default=None)


def set_identity(user: str | None, tenant: str | None) -> None:
    info = request_info_var.get()
    if info is not None:
        info["user"] = user
        info["tenant"] = tenant
