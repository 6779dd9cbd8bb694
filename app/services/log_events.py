"""The events of one request from every service, read from the log search engine for the lab-admin page.

Why through the gateway with its own certificate: the engine has no authentication; the gateway admits
the API's `log-search` certificate to search the lab's log indices only (read-only, ASVS 4.0.3 V4.1.3,
V9.2.1), so a compromised API can read logs but never write, delete or reconfigure them. Any failure
to reach the engine (off, down, certificate missing) is one 503 problem, never a 500.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any

import httpx

from app.core.config import Settings
from app.core.problems import Problem
from logsearch.client import GatewaySettings, client
from logsearch.search import LogQuery, dataset_of, message_of, search

log = logging.getLogger(__name__)

MAX_EVENTS = 500
"""One request's events are a handful; the bound keeps a runaway id from paging the engine."""


def gateway(settings: Settings) -> GatewaySettings | None:
    """The gateway settings, or None when the lab has no log engine (lab.yml logging.engine: none)."""
    if not settings.logsearch_url or not (settings.logsearch_ca_file and settings.logsearch_cert_file
                                          and settings.logsearch_key_file):
        return None
    return GatewaySettings(url=settings.logsearch_url, ca_file=Path(settings.logsearch_ca_file),
                           cert_file=Path(settings.logsearch_cert_file), key_file=Path(settings.logsearch_key_file),
                           index_prefix=settings.logsearch_index_prefix)


def row(event: dict[str, Any]) -> dict[str, Any]:
    """What the page shows of one event: when, which service's log, its level, one line."""
    log_field = event.get("log") or {}
    level = log_field.get("level") if isinstance(log_field, dict) else None
    return {"ts": str(event.get("@timestamp", "")), "dataset": dataset_of(event),
            "level": str(level) if level else None, "message": message_of(event)}


async def events_of(settings: Settings, request_id: str) -> list[dict[str, Any]]:
    """Every service's events carrying the request id, oldest first (503 problem if the engine is unreachable)."""
    gw = gateway(settings)
    if gw is None:
        raise Problem(503, "upstream-unavailable", "the lab has no log search engine (lab.yml logging.engine)")
    query = LogQuery(request_id=request_id, limit=MAX_EVENTS)
    try:
        async with client(gw, timeout_s=10.0) as http:
            events = await search(http, gw.index_prefix, query)
    except (httpx.HTTPError, ssl.SSLError, OSError, ValueError) as exc:
        log.warning("log search failed", extra={"error.type": type(exc).__name__})
        raise Problem(503, "upstream-unavailable", "the log search engine is unavailable") from exc
    return [row(e) for e in events]
