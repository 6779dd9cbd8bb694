"""Evidence parsing: ModSecurity lines of nginx's error log, the JSON audit log, the edge access log,
the app's log and problem+json bodies. Sample lines are in the formats the lab writes."""

from __future__ import annotations

import json
from pathlib import Path

from attacks.evidence import (
    Evidence,
    LogPaths,
    answered_by_edge,
    facts_from,
    oauth_error,
    parse_access_log,
    parse_app_log,
    parse_modsec_audit_log,
    parse_modsec_error_log,
    problem_kind,
)

UID = "5f2c8e0b9a7d4c3e8f1a2b3c4d5e6f70"
WARN_942 = (
    '2026/11/21 23:40:01 [info] 4242#4242: *17 ModSecurity: Warning. detected SQLi using libinjection. '
    '[file "/usr/share/modsecurity-crs/rules/REQUEST-942-APPLICATION-ATTACK-SQLI.conf"] [line "65"] '
    '[id "942100"] [rev ""] [msg "SQL Injection Attack Detected via libinjection"] '
    '[data "Matched Data: s&sos found within ARGS:json.title: x\' UNION SELECT"] [severity "2"] '
    '[ver "OWASP_CRS/3.3.4"] [maturity "0"] [accuracy "0"] [tag "attack-sqli"] [hostname "127.0.0.1"] '
    f'[uri "/api/v1/conversations"] [unique_id "{UID}"] [ref "v120,28"], client: 127.0.0.1, server: localhost, '
    'request: "POST /api/v1/conversations HTTP/2.0", host: "localhost"'
)
DENY_949 = (
    '2026/11/21 23:40:01 [warn] 4242#4242: *17 ModSecurity: Access denied with code 403 (phase 2). '
    'Matched "Operator `Ge\' with parameter `5\' against variable `TX:ANOMALY_SCORE\' (Value: `10\' ) '
    '[file "/usr/share/modsecurity-crs/rules/REQUEST-949-BLOCKING-EVALUATION.conf"] [line "80"] [id "949110"] '
    '[rev ""] [msg "Inbound Anomaly Score Exceeded (Total Score: 10)"] [data ""] [severity "2"] '
    f'[ver "OWASP_CRS/3.3.4"] [maturity "0"] [accuracy "0"] [tag "anomaly-evaluation"] [hostname "127.0.0.1"] '
    f'[uri "/api/v1/conversations"] [unique_id "{UID}"] [ref ""], client: 127.0.0.1, server: localhost'
)
OTHER = '2026/11/21 23:40:02 [notice] 4242#4242: signal process started'


def test_error_log_rule_ids_by_transaction() -> None:
    hits = parse_modsec_error_log([WARN_942, DENY_949, OTHER, WARN_942.replace(UID, "other")])
    assert sorted(hits) == [UID, "other"]
    assert [h.id for h in hits[UID]] == ["942100", "949110"]
    assert hits[UID][0].msg == "SQL Injection Attack Detected via libinjection"
    assert hits[UID][0].denied is False and hits[UID][1].denied is True
    assert hits[UID][1].severity == "2"


def test_error_log_ignores_lines_without_id_or_unique_id() -> None:
    assert parse_modsec_error_log([WARN_942.replace('[id "942100"]', ""), OTHER]) == {}


def test_audit_log_json_records() -> None:
    doc = {"transaction": {"unique_id": UID, "messages": [
        {"message": "SQL Injection Attack Detected via libinjection", "details": {"ruleId": "942100", "severity": "2"}},
        {"message": "Access denied with code 403", "details": {"ruleId": "949110", "severity": "2"}},
        {"message": "no rule id", "details": {}},
    ]}}
    hits = parse_modsec_audit_log([json.dumps(doc), "garbage", "{not json"])
    assert [h.id for h in hits[UID]] == ["942100", "949110"]
    assert hits[UID][1].denied is True


def _access(rid: str, nginx_rid: str, status: str, upstream: str) -> str:
    return json.dumps({"http": {"request": {"id": rid}, "response": {"status_code": status}},
                       "upstream": {"status": upstream, "address": "127.0.0.1:8000" if upstream else ""},
                       "nginx": {"request_id": nginx_rid, "limit_req": ""}, "url": {"path": "/api/v1/x"},
                       "user_agent": {"original": "seclab-probe/A03"}})


def test_access_log_keys_and_who_answered() -> None:
    entries = parse_access_log([_access("client-id-1", "n1", "413", ""), _access("n2", "n2", "422", "422")])
    assert entries["client-id-1"] is entries["n1"]
    assert answered_by_edge(entries["n1"]) is True
    assert answered_by_edge(entries["n2"]) is False
    assert answered_by_edge({"upstream_status": "-"}) is True


def test_app_log_only_access_records() -> None:
    lines = [
        'INFO:     127.0.0.1:60070 - "GET /healthz HTTP/1.1" 200 OK',
        json.dumps({"message": "request", "http": {"request": {"id": "abc"}, "response": {"status_code": 404}},
                    "url": {"path_template": "/api/v1/conversations/{conversation_id}"}}),
        json.dumps({"message": "token rejected", "http": {"request": {"id": "zzz"}}}),
    ]
    assert parse_app_log(lines) == {"abc": {"status": 404, "route": "/api/v1/conversations/{conversation_id}"}}


def test_problem_kind_needs_the_lab_prefix_and_a_json_type() -> None:
    body = {"type": "urn:seclab:problem:waf-blocked", "status": 403, "request_id": UID}
    assert problem_kind("application/problem+json", body) == "waf-blocked"
    assert problem_kind("application/problem+json; charset=utf-8", body) == "waf-blocked"
    assert problem_kind("text/html", body) is None
    assert problem_kind("application/problem+json", {"type": "about:blank"}) is None
    assert problem_kind("application/problem+json", ["not", "a", "dict"]) is None


def test_oauth_error_is_not_a_problem() -> None:
    assert oauth_error({"error": "invalid_grant", "error_description": "Invalid user credentials"}) == "invalid_grant"
    assert oauth_error({"type": "urn:seclab:problem:x", "error": "y"}) is None


def test_facts_from_keeps_ids_and_only_listed_headers() -> None:
    f = facts_from("POST", "/api/v1/conversations", 403,
                   {"Content-Type": "application/problem+json", "X-Request-ID": "edge-1", "Set-Cookie": "a=b",
                    "Server": "nginx"},
                   {"type": "urn:seclab:problem:waf-blocked", "request_id": UID, "detail": "blocked"}, 0.01234)
    assert (f.problem, f.request_id, f.body_request_id, f.elapsed_s) == ("waf-blocked", "edge-1", UID, 0.012)
    assert f.headers == {"set-cookie": "a=b"}


def test_live_lookup_reads_only_lines_written_after_the_start(tmp_path: Path) -> None:
    err = tmp_path / "nginx-error.log"
    err.write_text(WARN_942 + "\n")  # before the run: must not count
    ev = Evidence(LogPaths(edge_error_log=err), wait_s=0.0)
    assert ev.waf_rules(UID) == []
    with err.open("a") as fh:
        fh.write(DENY_949 + "\n")
    assert [h.id for h in ev.waf_rules(UID)] == ["949110"]


def test_unreadable_log_is_reported(tmp_path: Path) -> None:
    ev = Evidence(LogPaths(edge_error_log=tmp_path / "missing.log"), wait_s=0.0)
    assert ev.waf_rules(UID) == []
    assert "edge_error_log" in ev.log_errors()
