"""What a stepped `lab bench` run means: error classes, each step's verdict, the maximum users held.

Why apart from the runner: these are the judgements a reader of the report relies on ("the lab holds
10 users; at 20 the per-user rate limit refused requests"), so they are pure functions over Locust's
numbers, tested on synthetic stats without a lab (tests/benchmarks/test_bench_analysis.py).

Rules:
- a step is *met* when its error rate is at most lab.yml `performance.max_error_rate` and its p95 is at
  most `performance.p95_ms`;
- the maximum held is the largest step met together with every smaller step (a later lucky step
  after a miss does not count: the series is read as a ramp);
- what limited it is the first missed step's dominant error (by problem type and which limit sent
  it), else its latency. A security limit that refuses load is reported as the limit, never raised.
"""

from __future__ import annotations

import re
from typing import Any

PROBLEM_RE = re.compile(r"urn:seclab:problem:[a-z0-9-]+")
ACCOUNT_RE = re.compile(r" as ([A-Za-z0-9_.@-]+)'?\)?$")
STATUS_RE = re.compile(r"\bHTTP (\d{3})\b|\b(\d{3}) (?:Client|Server) Error\b")

# Which limit a refusal came from, told apart by the problem's detail text (app/api/deps.py,
# app/ai/budget.py, edge/snippets/seclab-problems.conf.j2): (needle, cause, what it is).
LIMIT_CAUSES: tuple[tuple[str, str, str], ...] = (
    ("from this address", "edge-address-limit",
     "edge per-address limit_req (lab.yml limits.rate_limits.per_address_per_minute; login: edge_token_rate_per_minute)"),
    ("per-user rate limit", "user-rate-limit", "app per-user rate limit (lab.yml limits.rate_limits.per_user_per_minute)"),
    ("per-address rate limit", "address-rate-limit",
     "app per-address rate limit (lab.yml limits.rate_limits.per_address_per_minute)"),
    ("tenant token budget", "tenant-token-budget", "tenant token budget (lab.yml ai.token_budget_per_tenant_per_hour)"),
    ("token budget", "user-token-budget", "user token budget (lab.yml ai.token_budget_per_user_per_hour)"),
)
LIMIT_TYPES = {"urn:seclab:problem:rate-limited", "urn:seclab:problem:budget-exhausted"}


def classify_error(error: str) -> dict[str, Any]:
    """One Locust error string -> {status, type, cause, limit, description}.

    The locustfile reports refusals as `HTTP <status> <problem type> (<detail>)`; anything else
    (a refused connection, a timeout, a Locust exception) is a transport error.
    """
    m = STATUS_RE.search(error)
    status = int(m.group(1) or m.group(2)) if m else None
    pm = PROBLEM_RE.search(error)
    ptype = pm.group(0) if pm else None
    if status is None and ptype is None:
        return {"status": None, "type": None, "cause": "transport", "limit": False,
                "description": "no HTTP answer (connection refused, reset or timed out)"}
    low = error.lower()
    if ptype in LIMIT_TYPES:
        for needle, cause, what in LIMIT_CAUSES:
            if needle in low:
                return {"status": status, "type": ptype, "cause": cause, "limit": True, "description": what}
        return {"status": status, "type": ptype, "cause": ptype.rsplit(":", 1)[1], "limit": True,
                "description": "a lab limit (detail did not say which)"}
    if ptype is None:
        return {"status": status, "type": None, "cause": f"http-{status}", "limit": False,
                "description": "an answer without a problem type (not from the lab's error handlers)"}
    what = ("a server-side failure: a service behind was down, restarting or overloaded" if (status or 0) >= 500
            else "refused by the lab (not a capacity limit)")
    return {"status": status, "type": ptype, "cause": ptype.rsplit(":", 1)[1], "limit": False, "description": what}


def error_groups(failures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Locust failure rows ({name, error, count}) -> one group per cause, most frequent first, with the
    routes and lab accounts it hit."""
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for f in failures:
        error = str(f.get("error", ""))
        c = classify_error(error)
        key = (c["status"], c["type"], c["cause"])
        g = groups.setdefault(key, {**c, "count": 0, "routes": [], "accounts": {}})
        g["count"] += int(f.get("count", 0))
        if f.get("name") and f["name"] not in g["routes"]:
            g["routes"].append(f["name"])
        m = ACCOUNT_RE.search(error.strip())
        if m:
            g["accounts"][m.group(1)] = g["accounts"].get(m.group(1), 0) + int(f.get("count", 0))
    return sorted(groups.values(), key=lambda g: (-g["count"], str(g["cause"])))


def step_verdict(step: dict[str, Any], p95_target_ms: float, max_error_rate: float) -> dict[str, Any]:
    """Met or missed, and why: errors first (a refusal is also fast, so it flatters latency), then p95."""
    attempts = int(step.get("requests") or 0) + int(step.get("login_failures") or 0)
    errors = int(step.get("errors") or 0)
    rate = errors / attempts if attempts else 0.0
    slow = float(step.get("p95_ms") or 0) > p95_target_ms
    if attempts == 0:
        return {"met": False, "limited_by": "errors", "error_rate": 0.0, "detail": "no request was made"}
    if rate > max_error_rate:
        top = (step.get("error_types") or [{}])[0]
        what = f"{top.get('status') or 'no answer'} {top.get('type') or top.get('cause', '')}".strip()
        detail = f"{errors} errors ({100 * rate:.1f} % > {100 * max_error_rate:g} %); most: {what} x{top.get('count', 0)}"
        if top.get("limit"):
            detail += f" from the {top['description']}"
        elif (top.get("status") or 0) >= 500:
            detail += f": {top['description']}"
        if top.get("accounts"):
            detail += " (" + ", ".join(f"{k} {v}" for k, v in sorted(top["accounts"].items())) + ")"
        if slow:
            detail += f"; p95 {step['p95_ms']:g} ms also above {p95_target_ms:g} ms"
        return {"met": False, "limited_by": "errors", "error_rate": round(rate, 4), "detail": detail}
    if slow:
        return {"met": False, "limited_by": "latency", "error_rate": round(rate, 4),
                "detail": f"p95 {step['p95_ms']:g} ms > target {p95_target_ms:g} ms"}
    return {"met": True, "limited_by": None, "error_rate": round(rate, 4),
            "detail": f"p95 {float(step.get('p95_ms') or 0):g} ms <= {p95_target_ms:g} ms, {errors} errors"}


def max_held(steps: list[dict[str, Any]]) -> tuple[int | None, dict[str, Any] | None]:
    """(largest user count met with every smaller step, first missed step or None)."""
    best: int | None = None
    for s in sorted(steps, key=lambda s: s["users"]):
        if not s["verdict"]["met"]:
            return best, s
        best = s["users"]
    return best, None


def summarise(steps: list[dict[str, Any]], *, p95_target_ms: float, max_error_rate: float,
              min_users: int) -> dict[str, Any]:
    """The run's conclusion for the report: max users held, against the lab's minimum, and what limited it."""
    for s in steps:
        s["verdict"] = step_verdict(s, p95_target_ms, max_error_rate)
        s["meets_target"] = s["verdict"]["met"]
    best, miss = max_held(steps)
    limited: dict[str, Any]
    if miss is None:
        tried = max((s["users"] for s in steps), default=0)
        limited = {"users": None, "by": "not reached",
                   "detail": f"every step met the target, up to {tried} users: the maximum is at least {tried}"}
    else:
        top = (miss.get("error_types") or [None])[0] if miss["verdict"]["limited_by"] == "errors" else None
        limited = {"users": miss["users"], "by": miss["verdict"]["limited_by"], "detail": miss["verdict"]["detail"],
                   "error": top, "security_limit": bool(top and top.get("limit"))}
    return {"max_users": best, "min_users": min_users, "meets_min_users": best is not None and best >= min_users,
            "limited_by": limited}
