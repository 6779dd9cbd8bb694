"""Prometheus metrics labelled by route template, never the raw path.

Why templates: raw paths carry ids (unbounded label cardinality, a cheap DoS on Prometheus) and
could carry user data into a system with weaker access control (ASVS 4.0.3 V7.1.1).
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

REQUESTS = Counter(
    "seclab_http_requests_total", "HTTP requests by route template and status", ["method", "route", "status"]
)
LATENCY = Histogram(
    "seclab_http_request_duration_seconds",
    "HTTP request latency by route template and status",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
RATE_LIMIT_FAIL_OPEN = Counter(
    "seclab_rate_limit_fail_open_total", "Rate-limit checks skipped because Redis was unreachable"
)
ENQUEUE_FAILURES = Counter(
    "seclab_enqueue_failures_total", "Accepted messages whose task could not be published (the sweeper enqueues them)"
)
GUARD_DECISIONS = Counter("seclab_guard_decisions_total", "Prompt-injection guard decisions", ["decision"])
# The guard's own time per message (thread hand-off included): `lab bench --layers` reads its sum and
# count to give the guard's share of a chat write, instead of switching the guard off in a running lab.
GUARD_LATENCY = Histogram(
    "seclab_guard_duration_seconds",
    "Prompt-injection guard screening time per message",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)


def render() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST
