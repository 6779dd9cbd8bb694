"""Search the lab's logs: one request id across every service, or a query over a time window.

Why both `http.request.id`/`trace.id` and the message text: ECS sources carry the id as a field, plain
text lines (PostgreSQL, Redis, ...) only in their message.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import BaseModel, Field, field_validator

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{7,127}$")
"""The edge keeps only such ids (edge/nginx.conf.j2 map $edge_request_id): anything else is no id."""

SINCE_RE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(text: str) -> timedelta:
    """`15m`, `2h`, `7d`, `30s` -> a timedelta (ValueError otherwise)."""
    m = SINCE_RE.match(text.strip())
    if not m or int(m.group(1)) == 0:
        raise ValueError(f"--since {text!r}: expected a number and a unit, e.g. 30s, 15m, 2h, 7d")
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


class LogQuery(BaseModel):
    """What `lab logs` asks for (validated before anything reaches the engine)."""

    request_id: str | None = None
    query: str | None = Field(default=None, max_length=1000)
    since: timedelta | None = None
    limit: int = Field(default=1000, ge=1, le=10000)

    @field_validator("request_id")
    @classmethod
    def _id_shape(cls, v: str | None) -> str | None:
        if v is not None and not REQUEST_ID_RE.match(v):
            raise ValueError("a request id is 8-128 characters of letters, digits and . _ : -")
        return v

    def body(self, now: datetime | None = None) -> dict[str, Any]:
        """The engine's search request: matching events, oldest first."""
        must: list[dict[str, Any]] = []
        if self.request_id is not None:
            rid = self.request_id
            must.append({"bool": {"should": [
                {"term": {"http.request.id": rid}},
                {"term": {"trace.id": rid}},
                {"match_phrase": {"message": rid}},
            ], "minimum_should_match": 1}})
        if self.query is not None:
            must.append({"simple_query_string": {"query": self.query, "default_operator": "and"}})
        if self.since is not None:
            start = (now or datetime.now(UTC)) - self.since
            must.append({"range": {"@timestamp": {"gte": start.isoformat()}}})
        if not must:
            must.append({"match_all": {}})
        return {
            "size": self.limit,
            "query": {"bool": {"must": must}},
            "sort": [{"@timestamp": {"order": "asc", "unmapped_type": "date"}}],
        }


async def search(http: httpx.AsyncClient, prefix: str, q: LogQuery) -> list[dict[str, Any]]:
    """The matching events as stored (`_source`), each with its `event.dataset`, oldest first."""
    resp = await http.post(f"/{prefix}-*/_search", json=q.body(), params={"ignore_unavailable": "true"})
    resp.raise_for_status()
    events: list[dict[str, Any]] = []
    for hit in resp.json().get("hits", {}).get("hits", []):
        src = dict(hit.get("_source", {}))
        event = dict(src.get("event") or {})
        if "dataset" not in event:
            # The index is <prefix>-<dataset>-YYYY.MM.DD: the dataset of a line that named none.
            event["dataset"] = hit["_index"].removeprefix(f"{prefix}-").rsplit("-", 1)[0]
            src["event"] = event
        events.append(src)
    return events


def dataset_of(event: dict[str, Any]) -> str:
    return str((event.get("event") or {}).get("dataset", "?"))


def request_id_of(event: dict[str, Any]) -> str | None:
    http = event.get("http") or {}
    rid = (http.get("request") or {}).get("id") if isinstance(http, dict) else None
    return str(rid) if rid else None


def message_of(event: dict[str, Any]) -> str:
    """The event's message, or its HTTP facts (method, path, status) when it has none; at most 300 chars."""
    msg = event.get("message")
    if not msg:
        http = event.get("http") or {}
        req = http.get("request") or {}
        resp = http.get("response") or {}
        url = event.get("url") or {}
        msg = " ".join(
            str(x) for x in (req.get("method"), url.get("path") or url.get("original"), resp.get("status_code")) if x
        )
    return str(msg)[:300]


def summary(event: dict[str, Any]) -> str:
    """One line for a person: time, dataset, then the message or the HTTP facts."""
    ts = str(event.get("@timestamp", "?"))
    return f"{ts}  {dataset_of(event):<18} {message_of(event)}"
