"""The monitoring templates rendered with the default lab definition: loopback only, every job
scraped, every alert documented (severity, summary, description, reference, reason comment)."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitoring import render

from .support import MONITORING

JOBS = {"app", "node", "postgres", "redis", "nginx", "prometheus", "alertmanager", "keycloak"}


def _host(address: str) -> str:
    host = re.sub(r"^[a-z]+://", "", address).split("/")[0]
    return host.rsplit(":", 1)[0].strip("[]")


def _is_loopback(host: str) -> bool:
    return host == "localhost" or ipaddress.ip_address(host).is_loopback


def test_every_scrape_target_is_loopback(rendered: Path, lab_vars: dict[str, Any]) -> None:
    doc = yaml.safe_load((rendered / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in doc["scrape_configs"]}
    assert set(jobs) == JOBS
    targets = [t for j in jobs.values() for sc in j["static_configs"] for t in sc["targets"]]
    targets += [
        t for am in doc["alerting"]["alertmanagers"] for sc in am["static_configs"] for t in sc["targets"]
    ]
    assert targets and all(_is_loopback(_host(t)) for t in targets), targets
    assert jobs["app"]["static_configs"][0]["targets"] == [f"127.0.0.1:{lab_vars['lab']['ports']['app']}"]
    assert jobs["app"]["metrics_path"] == "/metrics" and jobs["app"]["scheme"] == "http"
    assert doc["rule_files"] == ["rules/*.yml"]
    # Keycloak's metrics: HTTPS, its certificate verified against the lab root by name.
    kc = jobs["keycloak"]
    assert kc["scheme"] == "https" and kc["tls_config"]["server_name"] == "idp"
    assert kc["static_configs"][0]["targets"] == [f"127.0.0.1:{lab_vars['lab']['ports']['idp_management']}"]


def test_ports_follow_the_lab_definition(tmp_path: Path, lab_vars: dict[str, Any]) -> None:
    lab = {**lab_vars["lab"], "ports": {**lab_vars["lab"]["ports"], "app": 18001, "alertmanager": 19093}}
    doc = yaml.safe_load(render.render("prometheus.yml.j2", {"lab": lab}))
    jobs = {j["job_name"]: j["static_configs"][0]["targets"][0] for j in doc["scrape_configs"]}
    assert jobs["app"] == "127.0.0.1:18001" and jobs["alertmanager"] == "127.0.0.1:19093"
    assert doc["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:19093"]


def test_container_engine_can_override_targets(lab_vars: dict[str, Any]) -> None:
    doc = yaml.safe_load(
        render.render("prometheus.yml.j2", lab_vars, monitoring_targets={"node": "node-exporter:9100"})
    )
    jobs = {j["job_name"]: j["static_configs"][0]["targets"][0] for j in doc["scrape_configs"]}
    assert jobs["node"] == "node-exporter:9100" and jobs["redis"] == "127.0.0.1:9121"


def test_alertmanager_sends_to_the_loopback_receiver(rendered: Path) -> None:
    doc = yaml.safe_load((rendered / "alertmanager.yml").read_text())
    hooks = [h for r in doc["receivers"] for h in r.get("webhook_configs", [])]
    assert [h["url"] for h in hooks] == ["http://127.0.0.1:9095/alerts"]
    assert all(h["send_resolved"] for h in hooks)
    assert doc["route"]["receiver"] == "lab-webhook"


def test_undefined_lab_field_is_an_error(lab_vars: dict[str, Any]) -> None:
    lab = {k: v for k, v in lab_vars["lab"].items() if k != "performance"}
    with pytest.raises(Exception, match="performance"):
        render.render("rules/lab-targets.yml.j2", {"lab": lab})


RULES_TEXT = (MONITORING / "rules" / "seclab.yml").read_text()
ALERTS = [r for g in yaml.safe_load(RULES_TEXT)["groups"] for r in g["rules"] if "alert" in r]


@pytest.mark.parametrize("rule", ALERTS, ids=[r["alert"] for r in ALERTS])
def test_every_alert_is_documented(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"critical", "warning"}
    assert rule["labels"]["layer"] in {"edge", "identity", "app", "data", "ai", "platform"}
    ann = rule["annotations"]
    assert ann["summary"] and ann["description"]
    assert re.search(
        r"ASVS 4\.0\.3 V\d|OWASP (Top 10 2021|API Security Top 10 2023|LLM|CRS)", ann["reference"]
    )
    # The one-line reason above the rule, in the file itself (the working rule of the repository).
    before = RULES_TEXT[: RULES_TEXT.index(f"- alert: {rule['alert']}\n")].rstrip().splitlines()
    comments = []
    for line in reversed(before):
        if not line.strip().startswith("#"):
            break
        comments.append(line)
    assert any("Reason:" in c for c in comments), f"{rule['alert']} has no '# Reason:' comment"


def test_alert_names_are_unique() -> None:
    names = [r["alert"] for r in ALERTS]
    assert len(names) == len(set(names))
