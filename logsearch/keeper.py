"""The keeper: retention of the daily indices and the shipping metrics Prometheus alerts on.

Why a keeper and not the engine's lifecycle plugin: the minimal distribution has no Index State
Management plugin, and Maven Central serves none; deleting whole daily indices older than N days is
the same policy (lab.yml logging.retention_days). The metrics go through the node exporter's
textfile collector, like the certificate-expiry job (monitoring/cert_textfile.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

INDEX_DATE_RE = re.compile(r"-(\d{4})\.(\d{2})\.(\d{2})$")
STATS_TAIL_BYTES = 65536
STATS_MAX_BYTES = 4 * 1024 * 1024


def index_date(name: str) -> date | None:
    m = INDEX_DATE_RE.search(name)
    if not m:
        return None
    try:
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None


def expired(names: list[str], retention_days: int, today: date) -> list[str]:
    """Daily indices whose day is more than retention_days before today (today's is never expired)."""
    cutoff = today - timedelta(days=retention_days)
    return sorted(n for n in names if (d := index_date(n)) is not None and d < cutoff)


@dataclass
class ShipperStats:
    """The last counters rsyslog's impstats wrote for the shipping action and its queue."""

    queue_size: int = 0
    discarded: int = 0
    action_failed: int = 0
    action_suspended: int = 0
    rejected: int = 0
    submitted: int = 0
    age_s: float | None = None
    seen: set[str] = field(default_factory=set)


def read_shipper_stats(path: Path, action: str, now: float | None = None) -> ShipperStats:
    """Parse the tail of the impstats JSON file (one object a line; the newest line of each name wins)."""
    stats = ShipperStats()
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            f.seek(max(0, size - STATS_TAIL_BYTES))
            lines = f.read().decode("utf-8", "replace").splitlines()
        stats.age_s = (now or time.time()) - path.stat().st_mtime
    except OSError:
        return stats
    latest: dict[str, dict[str, Any]] = {}
    for line in lines:
        start = line.find("{")
        if start < 0:
            continue
        try:
            obj = json.loads(line[start:])
        except ValueError:
            continue
        if isinstance(obj, dict) and "name" in obj:
            latest[str(obj["name"])] = obj
    stats.seen = set(latest)
    for name, obj in latest.items():
        if name in (f"{action} queue", f"{action} queue[DA]"):
            stats.queue_size += int(obj.get("size", 0))
            stats.discarded += int(obj.get("discarded.full", 0)) + int(obj.get("discarded.nf", 0))
        elif name == action:
            stats.action_failed = int(obj.get("failed", 0))
            stats.action_suspended = int(obj.get("suspended", 0))
        elif name == "omelasticsearch":
            stats.submitted = int(obj.get("submitted", 0))
            stats.rejected = int(obj.get("failed.es", 0))
    if size > STATS_MAX_BYTES:
        # impstats appends forever: cut it back (rsyslog writes with O_APPEND, so it carries on at 0).
        os.truncate(path, 0)
    return stats


@dataclass
class EngineFacts:
    up: bool = False
    documents: int = 0
    newest_age_s: float | None = None
    indices: list[str] = field(default_factory=list)


async def engine_facts(http: httpx.AsyncClient, prefix: str) -> EngineFacts:
    facts = EngineFacts()
    try:
        health = await http.get("/_cluster/health")
        facts.up = health.status_code == 200 and health.json().get("status") in ("green", "yellow")
        cat = await http.get(f"/_cat/indices/{prefix}-*", params={"format": "json", "h": "index,docs.count"})
        if cat.status_code == 200:
            rows = cat.json()
            facts.indices = [r["index"] for r in rows]
            facts.documents = sum(int(r.get("docs.count") or 0) for r in rows)
        newest = await http.post(
            f"/{prefix}-*/_search",
            params={"ignore_unavailable": "true"},
            json={"size": 0, "aggs": {"newest": {"max": {"field": "@timestamp"}}}},
        )
        if newest.status_code == 200:
            value = newest.json().get("aggregations", {}).get("newest", {}).get("value")
            if value:
                facts.newest_age_s = max(0.0, time.time() - float(value) / 1000)
    except (httpx.HTTPError, ValueError):
        facts.up = False
    return facts


async def delete_expired(http: httpx.AsyncClient, names: list[str]) -> list[str]:
    """Delete by exact name (the engine refuses wildcard deletes: action.destructive_requires_name)."""
    deleted = []
    for name in names:
        resp = await http.delete(f"/{name}")
        if resp.status_code == 200:
            deleted.append(name)
    return deleted


def render_metrics(facts: EngineFacts, stats: ShipperStats, deleted_total: int) -> str:
    """Prometheus text format for the node exporter's textfile collector."""
    lines = [
        "# HELP seclab_logsearch_up 1 when the log search engine answers through its mTLS gateway.",
        "# TYPE seclab_logsearch_up gauge",
        f"seclab_logsearch_up {1 if facts.up else 0}",
        "# HELP seclab_logsearch_documents Log events stored in the lab's indices.",
        "# TYPE seclab_logsearch_documents gauge",
        f"seclab_logsearch_documents {facts.documents}",
        "# HELP seclab_logsearch_indices_deleted_total Daily indices deleted by retention since the keeper started.",
        "# TYPE seclab_logsearch_indices_deleted_total counter",
        f"seclab_logsearch_indices_deleted_total {deleted_total}",
        "# HELP seclab_logship_queue_size Events waiting in the shipper's queue (memory and disk).",
        "# TYPE seclab_logship_queue_size gauge",
        f"seclab_logship_queue_size {stats.queue_size}",
        "# HELP seclab_logship_discarded_total Events the shipper's queue discarded (full): lost events.",
        "# TYPE seclab_logship_discarded_total counter",
        f"seclab_logship_discarded_total {stats.discarded}",
        "# HELP seclab_logship_rejected_total Bulk items the engine rejected (kept in shipper-rejected.json).",
        "# TYPE seclab_logship_rejected_total counter",
        f"seclab_logship_rejected_total {stats.rejected}",
        "# HELP seclab_logship_suspended_total Times the shipping action was suspended (engine unreachable).",
        "# TYPE seclab_logship_suspended_total counter",
        f"seclab_logship_suspended_total {stats.action_suspended}",
        "# HELP seclab_logship_submitted_total Events the shipper submitted to the engine.",
        "# TYPE seclab_logship_submitted_total counter",
        f"seclab_logship_submitted_total {stats.submitted}",
    ]
    if stats.age_s is not None:
        lines += [
            "# HELP seclab_logship_stats_age_seconds Age of the shipper's last statistics (a stopped shipper stops writing them).",
            "# TYPE seclab_logship_stats_age_seconds gauge",
            f"seclab_logship_stats_age_seconds {stats.age_s:.1f}",
        ]
    if facts.newest_age_s is not None:
        lines += [
            "# HELP seclab_logsearch_newest_event_age_seconds Age of the newest searchable event.",
            "# TYPE seclab_logsearch_newest_event_age_seconds gauge",
            f"seclab_logsearch_newest_event_age_seconds {facts.newest_age_s:.1f}",
        ]
    return "\n".join(lines) + "\n"


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o644)
    tmp.replace(path)


async def one_pass(
    http: httpx.AsyncClient,
    prefix: str,
    retention_days: int,
    stats_file: Path,
    action: str,
    textfile: Path | None,
    deleted_total: int,
) -> int:
    """Retention, then metrics; returns the new count of deleted indices."""
    facts = await engine_facts(http, prefix)
    if facts.up:
        gone = await delete_expired(http, expired(facts.indices, retention_days, datetime.now(UTC).date()))
        deleted_total += len(gone)
    stats = read_shipper_stats(stats_file, action)
    if textfile is not None:
        write_atomically(textfile, render_metrics(facts, stats, deleted_total))
    return deleted_total


async def run(
    make_client: Any,
    prefix: str,
    retention_days: int,
    stats_file: Path,
    action: str,
    textfile: Path | None,
    interval_s: float,
    once: bool = False,
) -> None:
    deleted_total = 0
    while True:
        async with make_client() as http:
            deleted_total = await one_pass(http, prefix, retention_days, stats_file, action, textfile, deleted_total)
        if once:
            return
        await asyncio.sleep(interval_s)
