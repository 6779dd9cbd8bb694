"""promtool/amtool checks: the alert rules' unit tests, and the rendered configs.

Skipped with a reason where promtool/amtool are absent; `./lab test` runs on hosts `./lab up` provisioned.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

import labdef
from monitoring import render

from .support import MONITORING, tool


def run(*cmd: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd], check=False, capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_rule_unit_tests_pass() -> None:
    res = run(tool("promtool"), "test", "rules", MONITORING / "tests" / "seclab_test.yml")
    assert res.returncode == 0, res.stdout + res.stderr


def test_every_rule_file_is_valid(rendered: Path) -> None:
    res = run(tool("promtool"), "check", "rules", *sorted((rendered / "rules").glob("*.yml")))
    assert res.returncode == 0, res.stdout + res.stderr


def test_every_alert_has_a_unit_test() -> None:
    rules = yaml.safe_load((MONITORING / "rules" / "seclab.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tests = yaml.safe_load((MONITORING / "tests" / "seclab_test.yml").read_text())
    cases = [c for t in tests["tests"] for c in t.get("alert_rule_test", [])]
    firing = {c["alertname"] for c in cases if c.get("exp_alerts")}
    silent = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    assert alerts - firing == set(), "alerts without a firing case"
    # Every alert must also have a case where it stays silent (an empty list, or a series that must
    # not fire next to one that does - counted here by the explicit empty cases and the mixed ones).
    mixed = {"SeclabBudgetExhaustionSpike", "SeclabCertificateExpiresSoon", "SeclabCertificateExpired"}
    assert alerts - silent - mixed == set(), "alerts without a must-not-fire case"


def test_rule_tests_can_fail(tmp_path: Path) -> None:
    """Mutation check: raise the 5xx threshold and the unit tests must fail (the test is not vacuous)."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    text = (MONITORING / "rules" / "seclab.yml").read_text()
    mutated = text.replace("seclab:http_5xx_ratio_5m > 0.05", "seclab:http_5xx_ratio_5m > 0.5")
    assert mutated != text
    (tmp_path / "rules" / "seclab.yml").write_text(mutated)
    (tmp_path / "tests" / "t.yml").write_text((MONITORING / "tests" / "seclab_test.yml").read_text())
    res = run(tool("promtool"), "test", "rules", tmp_path / "tests" / "t.yml")
    assert res.returncode != 0
    assert "SeclabHttp5xxRatioHigh" in res.stdout + res.stderr


def _latency_test(rule_dir: Path) -> dict[str, Any]:
    """The latency scenario of seclab_test.yml, but with the target from the RENDERED lab-targets.yml."""
    tests = yaml.safe_load((MONITORING / "tests" / "seclab_test.yml").read_text())
    case = next(
        t
        for t in tests["tests"]
        if any(c["alertname"] == "SeclabLatencyP95AboveTarget" for c in t.get("alert_rule_test", []))
    )
    case["input_series"] = [s for s in case["input_series"] if s["series"] != "seclab:lab_target_p95_seconds"]
    return {
        "rule_files": [str(rule_dir / "seclab.yml"), str(rule_dir / "lab-targets.yml")],
        "evaluation_interval": "1m",
        "tests": [case],
    }


def test_rendered_p95_target_joins_the_latency_alert(rendered: Path) -> None:
    spec = _latency_test(rendered / "rules")
    (rendered / "latency_test.yml").write_text(yaml.safe_dump(spec))
    res = run(tool("promtool"), "test", "rules", rendered / "latency_test.yml")
    assert res.returncode == 0, res.stdout + res.stderr


def test_a_looser_lab_target_silences_the_latency_alert(tmp_path: Path, lab_vars: dict[str, Any]) -> None:
    """p95_ms = 5000 in lab.yml: 2.4 s is within target, so the expected alert must NOT come."""
    data = labdef.load(labdef.DEFAULT_PATH).model_dump(mode="json")
    data["performance"]["p95_ms"] = 5000
    render.write_all(tmp_path, labdef.as_vars(labdef.LabDefinition.model_validate(data)))
    assert "vector(5.0)" in (tmp_path / "rules" / "lab-targets.yml").read_text()
    (tmp_path / "latency_test.yml").write_text(yaml.safe_dump(_latency_test(tmp_path / "rules")))
    res = run(tool("promtool"), "test", "rules", tmp_path / "latency_test.yml")
    assert res.returncode != 0
    assert re.search(r"alertname:\s*SeclabLatencyP95AboveTarget", res.stdout + res.stderr)


def test_rendered_prometheus_config_is_valid(rendered: Path) -> None:
    res = run(tool("promtool"), "check", "config", rendered / "prometheus.yml")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "3 rule files found" in res.stdout  # seclab.yml, logsearch.yml, lab-targets.yml


def test_mtls_switch_renders_a_valid_config(tmp_path: Path, lab_vars: dict[str, Any]) -> None:
    for name in ("ca.crt", "scraper.crt", "scraper.key"):
        (tmp_path / name).write_text("placeholder\n")
    tls = {
        "ca_file": str(tmp_path / "ca.crt"),
        "cert_file": str(tmp_path / "scraper.crt"),
        "key_file": str(tmp_path / "scraper.key"),
        "server_name": "app",
    }
    render.write_all(tmp_path, lab_vars, monitoring_app_tls=tls)
    doc = yaml.safe_load((tmp_path / "prometheus.yml").read_text())
    app = next(j for j in doc["scrape_configs"] if j["job_name"] == "app")
    assert app["scheme"] == "https" and app["tls_config"]["cert_file"].endswith("scraper.crt")
    res = run(tool("promtool"), "check", "config", "--syntax-only", tmp_path / "prometheus.yml")
    assert res.returncode == 0, res.stdout + res.stderr


def test_rendered_alertmanager_config_is_valid(rendered: Path) -> None:
    res = run(tool("amtool"), "check-config", rendered / "alertmanager.yml")
    assert res.returncode == 0, res.stdout + res.stderr


def test_amtool_rejects_a_broken_config(tmp_path: Path) -> None:
    """The check itself can fail: a route to an unknown receiver is an error."""
    (tmp_path / "am.yml").write_text("route: {receiver: nowhere}\nreceivers: [{name: lab-webhook}]\n")
    assert run(tool("amtool"), "check-config", tmp_path / "am.yml").returncode != 0
