"""The report builder on small sample inputs (tests/seclab/report/data): HTML, JSON and JUnit contents.

No services needed: compliance comes from a sample JUnit file, lynis from a sample report, identity
from a given status dict; nothing is run. The point is that every figure in the page is traceable to
an input, and that missing inputs read "not run" with their command instead of a made-up number.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from seclab.report.build import Options, build

DATA = Path(__file__).resolve().parent / "data"
STAND_IN_STATUS = {
    "lab": "seclab", "edge": {"url": "https://localhost", "ca_cert": "/etc/seclab/pki/ca/ca-bundle.crt"},
    "idp": {"issuer": "http://127.0.0.1:8180/realms/seclab", "kind": "stand-in"},
    "services": {"postgres": {"up": True}, "redis": {"up": True}, "app": {"up": True}, "idp": {"up": False}},
}


def _group(pattern: str, text: str) -> str:
    """Group 1 of the first match across lines; fails the test when the pattern is absent."""
    m = re.search(pattern, text, re.DOTALL)
    assert m is not None, pattern
    return m.group(1)


def full_options(out: Path, **extra: Any) -> Options:
    return Options(
        out=out, compliance_junit=DATA / "compliance.junit.xml", run_compliance=False,
        attacks=DATA / "attacks.json", attacks_detection_only=DATA / "attacks-detection-only.json",
        waf_fp=DATA / "waf-fp.json", waf_crs=DATA / "waf-crs.json", bench=[DATA / "bench-steps.json"],
        testssl=DATA / "testssl.json", lynis_report=DATA / "lynis-report.dat", run_lynis=False,
        identity=STAND_IN_STATUS, **extra,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("report")
    return out, build(full_options(out))


def test_outputs_written(built: tuple[Path, dict[str, Any]]) -> None:
    out, _ = built
    for name in ("index.html", "report.json", "report.junit.xml", "compliance.junit.xml"):
        assert (out / name).is_file(), name
    for name in ("attacks.json", "attacks-detection-only.json", "waf-fp.json", "waf-crs.json", "bench-steps.json",
                 "testssl.json", "lynis-report.dat"):
        assert (out / "evidence" / name).is_file(), f"evidence/{name} not copied"


def test_json_compliance_by_control(built: tuple[Path, dict[str, Any]]) -> None:
    out, data = built
    assert json.loads((out / "report.json").read_text()) == json.loads(json.dumps(data, default=str))
    c = data["compliance"]
    assert c["tests"] == {"passed": 4, "failed": 2, "error": 0, "pending": 1, "skipped": 0}
    rows = {r["id"]: r for r in c["rows"]}
    assert rows["nginx-05"]["status"] == "pass"
    assert rows["postgres-08"]["status"] == "fail"
    assert rows["postgres-16"]["status"] == "fail"  # one parameter passed, one failed: the control fails
    assert rows["redis-06"]["status"] == "pending"
    assert rows["redis-06"]["tests"][0]["message"].startswith("not yet provisioned: edge/PKI issue")
    assert rows["nginx-11"]["status"] == "retired"
    assert rows["nginx-01"]["status"] == "not run"  # in the catalog, absent from this JUnit file
    assert any("prefer_server_ciphers" in w["part"] for w in rows["nginx-12"]["waivers"])
    assert rows["postgres-08"]["tests"][0]["nodeid"] == "tests/infra/test_postgres.py::test_postgres_08_privileged_roles[local]"


def test_json_other_sections(built: tuple[Path, dict[str, Any]]) -> None:
    _, d = built
    a = d["attacks"]
    assert a["counts"] == {"stopped": 2, "succeeded": 1, "error": 0}
    assert a["by_layer"] == {"edge": 1, "identity": 0, "app": 0, "data": 1, "ai": 0}
    assert a["unexpected"] == 1
    assert [r["users"] for r in d["performance"]["rows"]] == [5, 10, 20]
    assert d["waf"]["falsepositives"]["rows"][1]["block_rate"] == 0.0075
    assert d["waf"]["detection"]["rows"][0]["block_rate"] == 0.7933
    assert d["tls"]["open_findings"] == 0
    assert (d["lynis"]["hardening_index"], d["lynis"]["warnings"], d["lynis"]["suggestions"]) == (56, 2, 3)
    assert d["identity"]["stand_in"] is True


def test_html_contents(built: tuple[Path, dict[str, Any]]) -> None:
    out, _ = built
    html = (out / "index.html").read_text()
    assert "IDENTITY PROVIDER: STAND-IN" in html
    for text in ("nginx-05", "postgres-08", "log_duration is off", "not yet provisioned: edge/PKI issue",
                 "A03-SQLI-MSG-01", "942100", "req-7f3a9c01", "LLM01-PI-01", "unexpected",
                 "0.8 %", "79.3 %", "Hardening index <b>56</b>", "PKGS-7392", "TLS1_1", "ssl_prefer_server_ciphers off"):
        assert text in html, text
    # The false-positive card shows the lab's worst level, not whichever row came last (stock is 37.9 %).
    card = re.search(r"WAF false positives \(lab, worst level\)</span><b[^>]*>([^<]+)</b><span>([^<]+)</span>", html)
    assert card is not None and card.group(1) == "0.8 %" and "stock 37.9 %" in card.group(2), card
    # Attack matrix: the SQLi row marks the edge column as the stopping layer, the injection a miss in ai.
    row = _group(r'<tr id="attack-A03-SQLI-MSG-01">(.*?)</tr>', html)
    cells = re.findall(r'<td class="(cell[^"]*)"', row)
    assert cells == ["cell-stop", "cell", "cell", "cell", "cell"]
    row = _group(r'<tr id="attack-LLM01-PI-01">(.*?)</tr>', html)
    assert re.findall(r'<td class="(cell[^"]*)"', row)[-1] == "cell-miss"
    # Performance: table rows and an inline SVG with the three series and the target line.
    assert html.count("<polyline") == 3 and "p95 target 500" in html
    assert 'href="evidence/bench-steps.json"' in html and 'href="evidence/compliance.junit.xml"' in html


def test_html_is_csp_strict(built: tuple[Path, dict[str, Any]]) -> None:
    """No script, no inline event handler, no style attribute; the one <style> block is allowed by hash."""
    html = (built[0] / "index.html").read_text()
    assert "<script" not in html.lower()
    assert not re.search(r"\son[a-z]+=", html)
    assert not re.search(r"\sstyle=", html)
    css = _group(r"<style>(.*?)</style>", html)
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in html
    assert "default-src 'none'" in html


def test_combined_junit(built: tuple[Path, dict[str, Any]]) -> None:
    root = ET.parse(built[0] / "report.junit.xml").getroot()
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    comp, att = suites["compliance"], suites["attacks"]
    assert (comp.get("tests"), comp.get("failures"), comp.get("skipped")) == ("7", "2", "1")
    assert (att.get("tests"), att.get("failures")) == ("3", "1")
    failed = [tc.get("name") for tc in att.iter("testcase") if tc.find("failure") is not None]
    assert failed == ["LLM01-PI-01"]
    assert {tc.get("classname") for tc in comp.iter("testcase")} >= {"compliance.postgres-08", "compliance.redis-06"}


def test_missing_inputs_are_not_run(tmp_path: Path) -> None:
    """Nothing given, nothing run: every section says NOT RUN with its command, and no figure appears."""
    data = build(Options(out=tmp_path, run_compliance=False, run_lynis=False, collect_identity=False))
    for key in ("compliance", "attacks", "defence_demo", "performance", "layers", "tls", "lynis", "identity"):
        assert data[key]["status"] == "not run", key
        assert data[key]["command"], key
    assert data["waf"]["falsepositives"]["status"] == data["waf"]["detection"]["status"] == "not run"
    html = (tmp_path / "index.html").read_text()
    assert html.count("NOT RUN") == 10
    assert "./lab attack --json attacks.json" in html and "lynis audit system --quick" in html
    assert "<polyline" not in html and "Hardening index" not in html
    root = ET.parse(tmp_path / "report.junit.xml").getroot()
    assert all(s.get("skipped") == "1" for s in root.iter("testsuite"))


def test_unreadable_input_is_not_run(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"results": 3}')
    data = build(Options(out=tmp_path / "out", run_compliance=False, run_lynis=False, collect_identity=False,
                         attacks=bad, bench=[bad]))
    assert data["attacks"]["status"] == "not run" and "unreadable" in data["attacks"]["reason"]
    assert data["performance"]["status"] == "not run"


def test_keycloak_is_not_called_stand_in(tmp_path: Path) -> None:
    status = dict(STAND_IN_STATUS, idp={"issuer": "https://localhost/realms/seclab", "kind": "keycloak",
                                        "version": "26.7.3"})
    build(Options(out=tmp_path, run_compliance=False, run_lynis=False, identity=status))
    html = (tmp_path / "index.html").read_text()
    assert "STAND-IN" not in html and "Identity provider: Keycloak 26.7.3" in html


def test_performance_steps_and_max_users(built: tuple[Path, dict[str, Any]]) -> None:
    """A stepped bench file: per-step verdicts, the maximum held and the limit that stopped the next step."""
    out, d = built
    p = d["performance"]
    assert [r["meets_target"] for r in p["rows"]] == [True, True, False]
    assert (p["max_users"], p["meets_min_users"]) == (10, True)
    lim = p["limited_by"]
    assert (lim["users"], lim["by"], lim["security_limit"], lim["error"]["cause"]) == (20, "errors", True, "user-rate-limit")
    html = (out / "index.html").read_text()
    para = _group(r'<p id="max-users">(.*?)</p>', html)
    assert "<b class=\"pass\">10</b>" in para and "Limited at <b>20 users</b> by <b>errors</b>" in para
    assert "app per-user rate limit" in para and "security limit of the lab" in para
    assert "12 × 429 <code>urn:seclab:problem:rate-limited</code>" in html
    assert "max held 10" in html and html.count('stroke="#b3261e" stroke-width="2"') == 1  # one missed step ringed
    assert "alice@acme" in html and "bob@globex" in html


def test_single_run_bench_files_still_read(tmp_path: Path) -> None:
    """Older `lab bench --json` files (one run each) are rows too, judged by the same rules."""
    data = build(Options(out=tmp_path, run_compliance=False, run_lynis=False, collect_identity=False,
                         bench=[DATA / "bench-20.json", DATA / "bench-5.json", DATA / "bench-50.json"]))
    p = data["performance"]
    assert [r["users"] for r in p["rows"]] == [5, 20, 50]
    assert [r["meets_target"] for r in p["rows"]] == [True, True, False]  # 50 users: 12 errors, p95 990 ms
    assert (p["max_users"], p["limited_by"]["by"], p["limited_by"]["users"]) == (20, "errors", 50)
    assert "p95 990 ms also above 500 ms" in p["limited_by"]["detail"]


def test_defence_demo_section(built: tuple[Path, dict[str, Any]]) -> None:
    out, d = built
    dd = d["defence_demo"]
    kinds = {r["id"]: r["kind"] for r in dd["rows"]}
    assert kinds == {"A03-SQLI-MSG-01": "inner-layer", "API1-BOLA-READ-01": "inner-both", "LLM01-PI-01": "not-stopped"}
    assert dd["waf_stopped"] == 1 and dd["counts"]["inner-layer"] == 1 and dd["counts"]["waf-only"] == 0
    html = (out / "index.html").read_text()
    row = _group(r'<tr id="demo-A03-SQLI-MSG-01"[^>]*>(.*?)</tr>', html)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.DOTALL)
    assert "<b>edge</b>" in cells[1] and "<b>app</b>" in cells[2] and "urn:seclab:problem:validation" in cells[2]
    assert "an inner layer still stops it" in cells[3]
    assert 'href="evidence/attacks-detection-only.json"' in html


def _result(cid: str, outcome: str, layer: str | None) -> dict[str, Any]:
    return {"id": cid, "refs": ["CWE-89"], "outcome": outcome, "layer": layer, "evidence": {}, "suite": "s", "title": cid}


def test_defence_demo_kinds() -> None:
    from seclab.report.inputs import defence_demo_summary

    blocking = {"target": {"edge_mode": "blocking"}, "results": [
        _result("A-WAF", "stopped", "edge"), _result("A-INNER", "stopped", "edge"), _result("A-LIMIT", "stopped", "edge"),
        _result("A-ERR", "stopped", "edge"), _result("A-ONLYB", "stopped", "app")]}
    detection = {"target": {"edge_mode": "detection-only"}, "results": [
        _result("A-WAF", "succeeded", None), _result("A-INNER", "stopped", "identity"), _result("A-LIMIT", "stopped", "edge"),
        _result("A-ERR", "error", None)]}
    s = defence_demo_summary(blocking, detection)
    assert {r["id"]: r["kind"] for r in s["rows"]} == {
        "A-WAF": "waf-only", "A-INNER": "inner-layer", "A-LIMIT": "edge-without-waf", "A-ERR": "not-judged",
        "A-ONLYB": "one-run-only"}
    assert s["rows"][0]["id"] == "A-WAF"  # what only the WAF stopped comes first
    assert s["waf_stopped"] == 3
    with pytest.raises(ValueError, match="not detection-only"):
        defence_demo_summary(blocking, blocking)


def test_stopped_attacks_link_to_their_events(built: tuple[Path, dict[str, Any]]) -> None:
    """Each stopped attack shows the `./lab logs --request-id` command for its request; others none."""
    out, d = built
    rows = {r["id"]: r for r in d["attacks"]["rows"]}
    assert rows["A03-SQLI-MSG-01"]["logs_command"] == "./lab logs --request-id req-7f3a9c01"
    # An older results file: the id is read from evidence.response.
    assert rows["API1-BOLA-READ-01"]["logs_command"] == "./lab logs --request-id req-0b11c2d3"
    assert rows["LLM01-PI-01"]["logs_command"] is None  # not stopped: nothing to follow
    html = (out / "index.html").read_text()
    assert "<code>./lab logs --request-id req-7f3a9c01</code>" in _group(r'<tr id="attack-A03-SQLI-MSG-01">(.*?)</tr>', html)
    assert "lab logs" not in _group(r'<tr id="attack-LLM01-PI-01">(.*?)</tr>', html)


@pytest.mark.parametrize("rid", ["x; rm -rf /", "$(id)", "short", None, 42])
def test_no_events_command_for_an_id_the_edge_never_issues(rid: Any) -> None:
    from seclab.report.inputs import event_links

    assert event_links({"outcome": "stopped", "request_id": rid}) == {"request_id": None, "logs_command": None}
