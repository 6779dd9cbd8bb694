"""Case model, suite registry and the JSON output schema of `lab attack --json`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from attacks.model import AttackCase, Expectation, Report, Result
from attacks.runner import SUITES, load_suites, write_report


def test_every_registered_case_is_complete_and_unique() -> None:
    cases = load_suites()
    ids = [c.case.id for c in cases]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    assert {c.case.suite for c in cases} == set(SUITES), "a suite registers no case"
    for c in cases:
        assert c.case.refs and c.case.expected.layer in ("edge", "identity", "app", "data", "ai")


def test_required_families_are_covered() -> None:
    ids = {c.case.id for c in load_suites()}
    for prefix in ("A03-SQLI-", "A03-XSS-", "A01-TRAV-", "A03-CMDI-", "A10-SSRF-", "API2-JWT-", "API1-BOLA-",
                   "API3-MASS-", "A07-BRUTE-", "API4-RATE-", "API4-BODY-", "A03-CRLF-", "A05-HOST-",
                   "API4-XFF-", "LLM01-PI-", "LLM07-SYSPROMPT-", "LLM02-PII-", "A03-SQLMAP-"):
        assert any(i.startswith(prefix) for i in ids), prefix


def test_unknown_suite_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown suite"):
        load_suites(["nope"])


@pytest.mark.parametrize("bad", [
    {"id": "sqli-1"},
    {"refs": []},
    {"refs": ["OWASP Top 10"]},
    {"expected": {"layer": "firewall"}},
])
def test_case_validation_rejects_incomplete_cases(bad: dict) -> None:
    base = {"id": "A03-SQLI-MSG-01", "title": "t-t-t", "refs": ["OWASP-A03:2021"], "suite": "injection",
            "expected": {"layer": "edge"}}
    with pytest.raises(ValidationError):
        AttackCase(**{**base, **bad})


def test_a_layer_only_for_stopped() -> None:
    with pytest.raises(ValidationError):
        Result(id="A03-SQLI-MSG-01", refs=["OWASP-A03:2021"], outcome="succeeded", layer="edge")


def test_report_json_schema_and_failure_rule(tmp_path: Path) -> None:
    exp = Expectation(layer="edge")
    report = Report(results=[
        Result(id="A03-SQLI-TITLE-01", refs=["OWASP-A03:2021"], outcome="stopped", layer="edge",
               evidence={"waf_rules": ["942100"]}, expected=exp),
        Result(id="API1-BOLA-READ-01", refs=["API1:2023"], outcome="error", layer=None, evidence={"reason": "x"}),
    ], target={"base_url": "https://localhost"})
    path = tmp_path / "out.json"
    write_report(report, path)
    data = json.loads(path.read_text())
    assert list(data) == ["results", "target"]
    for r in data["results"]:
        assert {"id", "refs", "outcome", "layer", "evidence"} <= set(r)
        assert r["outcome"] in ("stopped", "succeeded", "error")
        assert r["layer"] in ("edge", "identity", "app", "data", "ai", None)
    assert [r.id for r in report.failed()] == ["API1-BOLA-READ-01"]
    assert Report.model_validate(data) == report
