"""`lab bench` judgements on synthetic Locust output: error classes, step verdicts, the maximum held.

Why synthetic: the conclusions ("holds 10 users; at 20 the per-user rate limit refused requests") must
be right whatever the machine's speed, so they are checked on made-up stats with known answers.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

import labdef
from benchmarks import analysis, runner
from labdef.errors import LabError

TARGET, MAX_ERR = 500.0, 0.0


def step(users: int, p95: float, errors: list[tuple[str, str, int]] | None = None, requests: int = 200) -> dict[str, Any]:
    failures = [{"name": n, "error": e, "count": c} for n, e, c in (errors or [])]
    return {"users": users, "requests": requests, "p50_ms": p95 / 4, "p95_ms": p95, "p99_ms": p95 * 2,
            "errors": sum(c for *_, c in (errors or [])), "error_types": analysis.error_groups(failures)}


USER_LIMIT = "CatchResponseError('HTTP 429 urn:seclab:problem:rate-limited (per-user rate limit exceeded) as alice')"
EDGE_LIMIT = ("HTTP 429 urn:seclab:problem:rate-limited (Too many requests from this address; retry after 5 "
              "seconds.)")
BUDGET = "HTTP 429 urn:seclab:problem:budget-exhausted (user token budget of 20000 per hour exhausted)"
TENANT_BUDGET = "HTTP 429 urn:seclab:problem:budget-exhausted (tenant token budget of 100000 per hour exhausted)"


@pytest.mark.parametrize(("error", "status", "cause", "limit"), [
    (USER_LIMIT, 429, "user-rate-limit", True),
    (EDGE_LIMIT, 429, "edge-address-limit", True),
    ("HTTP 429 urn:seclab:problem:rate-limited (per-address rate limit exceeded)", 429, "address-rate-limit", True),
    (BUDGET, 429, "user-token-budget", True),
    (TENANT_BUDGET, 429, "tenant-token-budget", True),
    ("HTTP 503 urn:seclab:problem:upstream-unavailable (no provider answered)", 503, "upstream-unavailable", False),
    ("HTTP 403 urn:seclab:problem:waf-blocked ()", 403, "waf-blocked", False),
    ("HTTP 502 no problem type ()", 502, "http-502", False),
    ("HTTPError('500 Server Error: Internal Server Error for url: /x')", 500, "http-500", False),
    ("ConnectionRefusedError(111, 'Connection refused')", None, "transport", False),
])
def test_classify_error(error: str, status: int | None, cause: str, limit: bool) -> None:
    c = analysis.classify_error(error)
    assert (c["status"], c["cause"], c["limit"]) == (status, cause, limit)


def test_error_groups_merge_routes_and_sort_by_count() -> None:
    groups = analysis.error_groups([
        {"name": "POST /m", "error": BUDGET, "count": 3},
        {"name": "GET /c", "error": USER_LIMIT, "count": 5},
        {"name": "POST /m", "error": USER_LIMIT, "count": 4},
    ])
    assert [(g["cause"], g["count"]) for g in groups] == [("user-rate-limit", 9), ("user-token-budget", 3)]
    assert groups[0]["routes"] == ["GET /c", "POST /m"]
    assert groups[0]["type"] == "urn:seclab:problem:rate-limited"
    assert groups[0]["accounts"] == {"alice": 9} and groups[1]["accounts"] == {}


def test_verdict_latency_vs_errors() -> None:
    assert analysis.step_verdict(step(5, 190), TARGET, MAX_ERR)["met"] is True
    slow = analysis.step_verdict(step(10, 612), TARGET, MAX_ERR)
    assert (slow["met"], slow["limited_by"]) == (False, "latency") and "612" in slow["detail"]
    refused = analysis.step_verdict(step(20, 120, [("POST /m", USER_LIMIT, 4)]), TARGET, MAX_ERR)
    assert (refused["met"], refused["limited_by"]) == (False, "errors")
    assert "per-user rate limit" in refused["detail"] and "urn:seclab:problem:rate-limited" in refused["detail"]
    # An error rate within lab.yml max_error_rate is tolerated; above it is not.
    assert analysis.step_verdict(step(20, 120, [("POST /m", BUDGET, 1)]), TARGET, 0.01)["met"] is True
    assert analysis.step_verdict(step(20, 120, [("POST /m", BUDGET, 3)]), TARGET, 0.01)["met"] is False
    assert analysis.step_verdict(step(5, 0, requests=0), TARGET, MAX_ERR)["met"] is False


def test_max_held_is_the_prefix_met() -> None:
    steps = [step(5, 190), step(10, 300), step(20, 140, [("POST /m", BUDGET, 7)]), step(40, 200)]
    s = analysis.summarise(steps, p95_target_ms=TARGET, max_error_rate=MAX_ERR, min_users=5)
    # 40 met again after 20 missed, but the series is a ramp: the lab holds 10.
    assert s["max_users"] == 10 and s["meets_min_users"] is True
    lim = s["limited_by"]
    assert (lim["users"], lim["by"], lim["security_limit"]) == (20, "errors", True)
    assert lim["error"]["cause"] == "user-token-budget"
    assert [x["meets_target"] for x in steps] == [True, True, False, True]


def test_max_held_latency_and_below_minimum() -> None:
    s = analysis.summarise([step(5, 650), step(10, 900)], p95_target_ms=TARGET, max_error_rate=MAX_ERR, min_users=5)
    assert s["max_users"] is None and s["meets_min_users"] is False
    assert (s["limited_by"]["users"], s["limited_by"]["by"], s["limited_by"]["security_limit"]) == (5, "latency", False)


def test_max_not_reached() -> None:
    s = analysis.summarise([step(5, 100), step(10, 200)], p95_target_ms=TARGET, max_error_rate=MAX_ERR, min_users=20)
    assert s["max_users"] == 10 and s["meets_min_users"] is False
    assert s["limited_by"]["by"] == "not reached"


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def test_runner_reads_locust_csvs(tmp_path: Path) -> None:
    """Locust's stats/failures CSVs + the sessions file -> one step; start-up failures count as errors."""
    head = ["Type", "Name", "Request Count", "Failure Count", "Requests/s", "50%", "95%", "99%"]
    _write_csv(tmp_path / "s.csv", head, [
        ["POST", "POST /conversations/{id}/messages", 40, 4, 0.7, 80, 600, 900],
        ["POST", "POST /token (login)", 0, 0, 0, 0, 0, 0],
        ["", "Aggregated", 100, 4, 1.7, 15, 420, 800],
    ])
    _write_csv(tmp_path / "f.csv", ["Method", "Name", "Error", "Occurrences"],
               [["POST", "POST /conversations/{id}/messages", USER_LIMIT, 4]])
    agg, routes = runner.parse_stats(tmp_path / "s.csv")
    failures = runner.parse_failures(tmp_path / "f.csv")
    sessions = {"started": 10, "logged_in": 9, "relogins": 0,
                "start_failures": {f"POST /token (login): {EDGE_LIMIT}": 1}}
    s = runner.step_summary(agg, routes, failures, sessions, users=10, duration_s=60, ramp_s=25)
    assert (s["requests"], s["errors"], s["login_failures"], s["p95_ms"]) == (100, 5, 1, 420.0)
    assert [r["name"] for r in s["routes"]] == ["POST /conversations/{id}/messages"]  # empty rows dropped
    assert {g["cause"]: g["count"] for g in s["error_types"]} == {"user-rate-limit": 4, "edge-address-limit": 1}
    assert runner.parse_failures(tmp_path / "absent.csv") == []


def test_parse_users_and_lab_steps() -> None:
    assert runner.parse_users("5,10,20") == [5, 10, 20] and runner.parse_users("7") == [7]
    for bad in ("10,5", "5,5", "0,5", "a,b", ""):
        with pytest.raises(LabError):
            runner.parse_users(bad)
    assert labdef.load().performance.user_steps == sorted(set(labdef.load().performance.user_steps))
    with pytest.raises(Exception, match="strictly increasing"):
        labdef.Performance(user_steps=[10, 5])
