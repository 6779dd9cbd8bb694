"""ECS JSON logs on stdout with the request's correlation id in `trace.id` and `http.request.id`.

Why ECS: one schema for app, nginx and ModSecurity logs, so one id follows a request across layers
(ASVS 4.0.3 V7.1.3, OWASP Top 10 2021 A09 logging and monitoring failures). Tokens and message
content are never passed to a logger (ASVS V7.1.1).
"""

from __future__ import annotations

import logging
import sys

import ecs_logging

from app.core.context import request_id_var


class _CorrelationFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        rid = request_id_var.get()
        if rid is not None:
            setattr(record, "trace.id", rid)
            setattr(record, "http.request.id", rid)
        return True


def configure_logging(level: str = "INFO") -> None:
    """Idempotent: replaces the handler on the `seclab` logger tree only."""
    logger = logging.getLogger("seclab")
    for h in list(logger.handlers):
        if getattr(h, "_seclab", False):
            logger.removeHandler(h)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(ecs_logging.StdlibFormatter(exclude_fields=["log.original", "process", "log.origin"]))
    handler.addFilter(_CorrelationFilter())
    handler._seclab = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
