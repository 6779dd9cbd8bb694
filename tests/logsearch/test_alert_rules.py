"""The logging alerts fire on the keeper's series, and each stays silent when it should (promtool)."""

from __future__ import annotations

import subprocess

import yaml

from tests.monitoring.support import MONITORING, tool


def test_logging_alert_rules_unit_tests_pass() -> None:
    res = subprocess.run([tool("promtool"), "test", "rules", str(MONITORING / "tests" / "logsearch_test.yml")],
                         capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stdout + res.stderr


def test_every_logging_alert_has_a_firing_and_a_silent_case() -> None:
    rules = yaml.safe_load((MONITORING / "rules" / "logsearch.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tests = yaml.safe_load((MONITORING / "tests" / "logsearch_test.yml").read_text())
    cases = [c for t in tests["tests"] for c in t.get("alert_rule_test", [])]
    assert alerts == {c["alertname"] for c in cases if c.get("exp_alerts")}
    assert alerts == {c["alertname"] for c in cases if not c.get("exp_alerts")}


def test_the_alerted_series_are_the_ones_the_keeper_writes() -> None:
    from logsearch import keeper

    text = keeper.render_metrics(keeper.EngineFacts(newest_age_s=1.0), keeper.ShipperStats(age_s=1.0), 0)
    written = {line.split()[0] for line in text.splitlines() if line and not line.startswith("#")}
    rules = (MONITORING / "rules" / "logsearch.yml").read_text()
    for series in ("seclab_logsearch_up", "seclab_logship_queue_size", "seclab_logship_discarded_total",
                   "seclab_logship_rejected_total", "seclab_logship_stats_age_seconds"):
        assert series in rules and series in written, series
