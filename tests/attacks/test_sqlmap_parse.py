"""sqlmap verdict parsing (console output and traffic file) and the layer judgement of the sqlmap suite."""

from __future__ import annotations

from pathlib import Path

from attacks import sqlmap_runner
from attacks.sqlmap_runner import SqlmapResult, SqlmapSpec, command, parse_output, parse_traffic, redact
from attacks.suites.sqlmap import judge

CLEAN = """[23:50:01] [INFO] testing 'PostgreSQL AND boolean-based blind - WHERE or HAVING clause'
[23:50:09] [WARNING] (custom) POST parameter 'JSON #1*' does not seem to be injectable
[23:50:09] [CRITICAL] all tested parameters do not appear to be injectable. Try to increase values for '--level'/'--risk' options
"""
FOUND = """sqlmap identified the following injection point(s) with a total of 46 HTTP(s) requests:
---
Parameter: cursor (GET)
    Type: boolean-based blind
---
[INFO] GET parameter 'cursor' is vulnerable. Do you want to keep testing the others (if any)? [y/N] N
"""
TRAFFIC = """HTTP request [#1]:
POST /api/v1/conversations/x/messages HTTP/1.1

HTTP response [#1] (201 Created):
content-type: application/json

{"message": {}}
HTTP request [#2]:
POST /api/v1/conversations/x/messages HTTP/1.1

HTTP response [#2] (422 Unprocessable Entity):
content-type: application/problem+json

{"type":"urn:seclab:problem:prompt-injection","status":422}
HTTP response [#3] (403 Forbidden):
{"type":"urn:seclab:problem:waf-blocked","status":403}
"""


def test_verdicts() -> None:
    assert parse_output(CLEAN)[0] == "not-injectable"
    verdict, params, _ = parse_output(FOUND)
    assert verdict == "injectable" and "cursor" in params
    assert parse_output("[CRITICAL] connection refused")[0] == "inconclusive"


def test_traffic_counts() -> None:
    n, statuses, problems = parse_traffic(TRAFFIC)
    assert n == 3 and statuses == {"201": 1, "403": 1, "422": 1}
    assert problems == {"prompt-injection": 1, "waf-blocked": 1}


def test_command_is_bounded_and_redacted(tmp_path: Path) -> None:
    spec = SqlmapSpec(url="https://localhost/api/v1/conversations?limit=*&cursor=*",
                      headers={"Authorization": "Bearer SECRET.TOKEN"}, delay_s=0.6)
    cmd = command(spec, tmp_path)
    for flag in ("--batch", "--timeout", "--retries", "--level", "--risk", "--output-dir", "-t", "--delay"):
        assert flag in cmd
    assert cmd[cmd.index("--retries") + 1] == "1" and cmd[cmd.index("--level") + 1] == "2"
    assert not any("SECRET" in a for a in redact(cmd))


def test_wall_clock_limit_kills_and_is_inconclusive(tmp_path: Path) -> None:
    fake = tmp_path / "sqlmap"
    fake.write_text("#!/bin/sh\necho started\nsleep 30\n")
    fake.chmod(0o755)
    res = sqlmap_runner.run(SqlmapSpec(url="http://127.0.0.1:9/x?a=*", wall_clock_s=0.5), sqlmap=str(fake))
    assert res.timed_out and res.verdict == "inconclusive" and res.duration_s < 15


def _res(verdict: str, statuses: dict[str, int], problems: dict[str, int]) -> SqlmapResult:
    return SqlmapResult(verdict=verdict, requests=sum(statuses.values()), statuses=statuses, problems=problems)  # type: ignore[arg-type]


def test_judge() -> None:
    assert judge(_res("injectable", {"200": 5}, {}), {}, False).effective is True
    obs = judge(_res("not-injectable", {"201": 80, "422": 20}, {"prompt-injection": 20}), {}, False)
    assert obs.neutralized is not None and obs.neutralized.layer == "data"
    obs = judge(_res("not-injectable", {"200": 2, "422": 98}, {"validation": 98}), {}, False)
    assert obs.neutralized is not None and obs.neutralized.layer == "app"
    edge = {"edge_answered": {"403": 90}, "upstream_answered": {"200": 10}, "waf_rules": {"942100": 50}}
    obs = judge(_res("not-injectable", {"200": 10, "403": 90}, {"waf-blocked": 90}), edge, True)
    assert obs.neutralized is not None and obs.neutralized.layer == "edge"
    assert judge(_res("inconclusive", {"200": 1}, {}), {}, False).error


def test_probe_user_agent_names_no_scanner() -> None:
    from attacks.suites.sqlmap import probe_user_agent

    scanners = Path("/usr/share/modsecurity-crs/rules/scanners-user-agents.data")
    names = [ln.strip().lower() for ln in scanners.read_text().splitlines()
             if ln.strip() and not ln.startswith("#")] if scanners.exists() else ["sqlmap"]
    for case_id in ("A03-SQLMAP-MSG-01", "A03-SQLMAP-LIST-01"):
        ua = probe_user_agent(case_id).lower()
        assert not [n for n in names if n in ua], ua
    assert probe_user_agent("A03-SQLMAP-MSG-01") != probe_user_agent("A03-SQLMAP-LIST-01")
