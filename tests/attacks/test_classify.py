"""Outcome classification: succeeded / stopped-by-layer / error, from facts only (never a guessed layer)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from attacks.classify import Neutralized, Observation, classify
from attacks.evidence import Evidence, LogPaths, ResponseFacts
from attacks.model import AttackCase, Expectation

CASE = AttackCase(id="A03-SQLI-TITLE-01", title="sqli in title", refs=["OWASP-A03:2021"], suite="injection",
                  expected=Expectation(layer="edge"))
RID = "0123456789abcdef0123456789abcdef"


def resp(status: int, problem: str | None = None, **kw: Any) -> ResponseFacts:
    return ResponseFacts(method="POST", path="/api/v1/conversations", status=status, problem=problem,
                         request_id=kw.pop("request_id", RID), body_request_id=kw.pop("body_request_id", RID), **kw)


@pytest.fixture
def logs(tmp_path: Path) -> tuple[Evidence, Path, Path]:
    err, acc = tmp_path / "nginx-error.log", tmp_path / "nginx-access.json"
    err.write_text("")
    acc.write_text("")
    return Evidence(LogPaths(edge_error_log=err, edge_access_log=acc), wait_s=0.0), err, acc


def add_access(acc: Path, status: str, upstream: str) -> None:
    with acc.open("a") as fh:
        fh.write(json.dumps({"http": {"request": {"id": RID}, "response": {"status_code": status}},
                             "upstream": {"status": upstream}, "nginx": {"request_id": RID}}) + "\n")


def add_rule(err: Path, rule: str, denied: bool) -> None:
    kind = "Access denied with code 403 (phase 2)." if denied else "Warning."
    with err.open("a") as fh:
        fh.write(f'2026/11/21 [warn] 1#1: *1 ModSecurity: {kind} [id "{rule}"] [msg "m"] [unique_id "{RID}"]\n')


@pytest.mark.parametrize(("problem", "layer"), [
    ("unauthenticated", "identity"), ("forbidden", "identity"), ("validation", "app"), ("not-found", "app"),
    ("prompt-injection", "ai"), ("pii-policy", "ai"), ("tenant-isolation", "data"), ("rate-limited", "app"),
    ("budget-exhausted", "ai"),
])
def test_problem_type_names_the_layer_without_edge(problem: str, layer: str) -> None:
    case = CASE.model_copy(update={"tests_limits": True})
    r = classify(case, Observation(response=resp(422, problem)), None, through_edge=False)
    assert (r.outcome, r.layer) == ("stopped", layer)


def test_effective_attack_succeeds_without_layer() -> None:
    r = classify(CASE, Observation(effective=True, response=resp(201)), None, through_edge=False)
    assert (r.outcome, r.layer) == ("succeeded", None)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_errors_not_refusals(status: int) -> None:
    r = classify(CASE, Observation(response=resp(status, "upstream-unavailable")), None, through_edge=False)
    assert (r.outcome, r.layer) == ("error", None)


def test_refusal_without_problem_type_is_error() -> None:
    r = classify(CASE, Observation(response=resp(400)), None, through_edge=False)
    assert r.outcome == "error" and "without a problem type" in r.evidence["reason"]


def test_accepted_without_proof_is_error_with_proof_is_stopped() -> None:
    r = classify(CASE, Observation(response=resp(201)), None, through_edge=False)
    assert (r.outcome, r.layer) == ("error", None)
    proof = Neutralized(layer="data", proof={"stored_verbatim": True})
    r = classify(CASE, Observation(response=resp(201), neutralized=proof), None, through_edge=False)
    assert (r.outcome, r.layer, r.evidence["neutralized"]) == ("stopped", "data", {"stored_verbatim": True})


def test_neutralized_needs_a_non_empty_proof() -> None:
    with pytest.raises(ValueError):
        Neutralized(layer="app", proof={})


def test_oauth_refusal_is_identity() -> None:
    r = classify(CASE, Observation(response=resp(401, oauth_error="invalid_grant")), None, through_edge=False)
    assert (r.outcome, r.layer) == ("stopped", "identity")


def test_waf_block_needs_rule_ids(logs: tuple[Evidence, Path, Path]) -> None:
    ev, err, acc = logs
    add_access(acc, "403", "")
    r = classify(CASE, Observation(response=resp(403, "waf-blocked")), ev, through_edge=True)
    assert (r.outcome, r.layer) == ("error", None)
    add_rule(err, "942100", False)
    add_rule(err, "949110", True)
    r = classify(CASE, Observation(response=resp(403, "waf-blocked")), ev, through_edge=True)
    assert (r.outcome, r.layer) == ("stopped", "edge")
    assert r.evidence["waf_rules"] == ["942100", "949110"] and r.evidence["waf_denied_by"] == ["949110"]


LIMITS = CASE.model_copy(update={"tests_limits": True})


def test_edge_own_refusal_is_edge_upstream_refusal_is_app(logs: tuple[Evidence, Path, Path]) -> None:
    ev, _, acc = logs
    add_access(acc, "413", "")
    r = classify(CASE, Observation(response=resp(413, "payload-too-large")), ev, through_edge=True)
    assert (r.outcome, r.layer) == ("stopped", "edge")


def test_upstream_refusal_through_edge_is_the_app(logs: tuple[Evidence, Path, Path]) -> None:
    ev, _, acc = logs
    add_access(acc, "413", "413")
    r = classify(CASE, Observation(response=resp(413, "payload-too-large")), ev, through_edge=True)
    assert (r.outcome, r.layer) == ("stopped", "app")


def test_ambiguous_cause_without_access_log_is_error(logs: tuple[Evidence, Path, Path]) -> None:
    ev, _, _ = logs
    r = classify(LIMITS, Observation(response=resp(429, "rate-limited")), ev, through_edge=True)
    assert (r.outcome, r.layer) == ("error", None) and "cannot tell" in r.evidence["reason"]
    # ...but a cause only the app produces needs no access-log entry:
    r = classify(CASE, Observation(response=resp(401, "unauthenticated")), ev, through_edge=True)
    assert (r.outcome, r.layer) == ("stopped", "identity")


def test_detection_only_matches_are_recorded_on_passing_requests(logs: tuple[Evidence, Path, Path]) -> None:
    ev, err, acc = logs
    add_access(acc, "201", "201")
    add_rule(err, "941100", False)
    r = classify(CASE, Observation(effective=True, response=resp(201)), ev, through_edge=True)
    assert r.outcome == "succeeded" and r.evidence["waf_rules"] == ["941100"]


def test_case_error_is_error() -> None:
    r = classify(CASE, Observation(error="ConnectError: refused"), None, through_edge=False)
    assert r.outcome == "error" and r.evidence["reason"].startswith("ConnectError")


def test_quota_refusal_is_not_a_stop_unless_limits_are_tested() -> None:
    r = classify(CASE, Observation(response=resp(429, "budget-exhausted")), None, through_edge=False)
    assert (r.outcome, r.layer) == ("error", None) and "not tested" in r.evidence["reason"]
    limits_case = CASE.model_copy(update={"tests_limits": True})
    r = classify(limits_case, Observation(response=resp(429, "rate-limited")), None, through_edge=False)
    assert (r.outcome, r.layer) == ("stopped", "app")


def test_result_carries_the_edge_request_id_for_lab_logs(logs: tuple[Evidence, Path, Path]) -> None:
    """A stopped attack names its request id (the report prints `./lab logs --request-id` for it)."""
    ev, err, acc = logs
    add_access(acc, "403", "")
    add_rule(err, "942100", True)
    r = classify(CASE, Observation(response=resp(403, "waf-blocked")), ev, through_edge=True)
    assert (r.outcome, r.request_id) == ("stopped", RID)
    # Only the body's id (a header stripped on the way): still found.
    r = classify(CASE, Observation(response=resp(422, "validation", request_id=None, body_request_id="edge-1234abcd")),
                 None, through_edge=False)
    assert r.request_id == "edge-1234abcd"
    # An id the edge would never issue (shell characters) is not kept; no response, no id.
    r = classify(CASE, Observation(response=resp(422, "validation", request_id="x; rm -rf /", body_request_id=None)),
                 None, through_edge=False)
    assert r.request_id is None
    assert classify(CASE, Observation(error="boom"), None, through_edge=False).request_id is None


def test_result_refuses_a_request_id_of_another_shape() -> None:
    from pydantic import ValidationError

    from attacks.model import Result

    with pytest.raises(ValidationError):
        Result(id=CASE.id, refs=CASE.refs, outcome="stopped", layer="edge", request_id="$(id)")
