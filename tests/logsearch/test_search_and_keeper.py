"""Offline checks of the logsearch package: queries, retention, shipping metrics, resources, settings."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

import labdef
from logsearch import keeper, resources
from logsearch.search import LogQuery, dataset_of, parse_since, request_id_of, summary


def test_parse_since_units_and_refusals() -> None:
    assert parse_since("15m") == timedelta(minutes=15)
    assert parse_since("2h") == timedelta(hours=2)
    assert parse_since("7d") == timedelta(days=7)
    assert parse_since("30s") == timedelta(seconds=30)
    for bad in ("", "15", "m", "0m", "-5m", "5w", "1.5h"):
        with pytest.raises(ValueError, match="--since"):
            parse_since(bad)


def test_request_id_query_matches_fields_and_text_sorted_oldest_first() -> None:
    body = LogQuery(request_id="corr-0123456789ab").body()
    should = body["query"]["bool"]["must"][0]["bool"]["should"]
    assert {"term": {"http.request.id": "corr-0123456789ab"}} in should
    assert {"term": {"trace.id": "corr-0123456789ab"}} in should
    assert {"match_phrase": {"message": "corr-0123456789ab"}} in should
    assert body["sort"][0]["@timestamp"]["order"] == "asc"


def test_query_and_since_build_a_time_range() -> None:
    now = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)
    body = LogQuery(query="949110", since=timedelta(minutes=15)).body(now=now)
    must = body["query"]["bool"]["must"]
    assert must[0]["simple_query_string"]["query"] == "949110"
    assert must[1] == {"range": {"@timestamp": {"gte": "2026-12-03T05:45:00+00:00"}}}


@pytest.mark.parametrize("bad", ["short", "x" * 200, "has space 123", "semi;colon99", "<script>xx"])
def test_request_ids_the_edge_would_not_keep_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError):
        LogQuery(request_id=bad)


def test_summary_prefers_message_and_falls_back_to_http_facts() -> None:
    ev = {"@timestamp": "t", "event": {"dataset": "nginx.access"}, "http": {"request": {"id": "abc", "method": "GET"},
          "response": {"status_code": 403}}, "url": {"path": "/api"}}
    assert dataset_of(ev) == "nginx.access" and request_id_of(ev) == "abc"
    assert summary(ev).split() == ["t", "nginx.access", "GET", "/api", "403"]
    assert "hello" in summary({"message": "hello", "event": {"dataset": "redis"}})


def test_retention_deletes_only_whole_days_older_than_the_policy() -> None:
    names = ["seclab-logs-app-2026.11.20", "seclab-logs-app-2026.11.26", "seclab-logs-app-2026.11.25",
             "seclab-logs-app-2026.12.03", "seclab-logs-app-bad", "seclab-logs-app-2026.13.01"]
    assert keeper.expired(names, 7, date(2026, 12, 3)) == ["seclab-logs-app-2026.11.20", "seclab-logs-app-2026.11.25"]
    assert keeper.expired(names, 30, date(2026, 12, 3)) == []


def _impstats(path: Path, size: int, discarded: int, failed_es: int) -> None:
    rows = [
        {"name": "seclab_engine", "origin": "core.action", "processed": 9, "failed": 1, "suspended": 3},
        {"name": "seclab_engine queue", "origin": "core.queue", "size": 5, "discarded.full": 0, "discarded.nf": 0},
        {"name": "seclab_engine queue[DA]", "origin": "core.queue", "size": size, "discarded.full": discarded,
         "discarded.nf": 0},
        {"name": "omelasticsearch", "origin": "omelasticsearch", "submitted": 42, "failed.es": failed_es},
    ]
    path.write_text("".join(f"Thu Dec  3 06:10:18 2026: {json.dumps(r)}\n" for r in rows))


def test_shipper_stats_take_the_newest_counters(tmp_path: Path) -> None:
    f = tmp_path / "impstats.json"
    _impstats(f, size=100, discarded=0, failed_es=0)
    with f.open("a") as out:  # a newer interval: these numbers win
        out.write('Thu: { "name": "seclab_engine queue[DA]", "origin": "core.queue", "size": 7, "discarded.full": 2, "discarded.nf": 1 }\n')
    s = keeper.read_shipper_stats(f, "seclab_engine", now=time.time())
    assert s.queue_size == 5 + 7 and s.discarded == 3
    assert s.action_suspended == 3 and s.submitted == 42 and s.rejected == 0
    assert s.age_s is not None and s.age_s < 60


def test_missing_stats_file_reports_no_age(tmp_path: Path) -> None:
    s = keeper.read_shipper_stats(tmp_path / "absent.json", "seclab_engine")
    assert s.age_s is None and s.queue_size == 0


def test_metrics_text_carries_every_alerted_series(tmp_path: Path) -> None:
    f = tmp_path / "impstats.json"
    _impstats(f, size=10, discarded=4, failed_es=2)
    stats = keeper.read_shipper_stats(f, "seclab_engine")
    text = keeper.render_metrics(keeper.EngineFacts(up=False, documents=12, newest_age_s=3.5), stats, 1)
    values = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    assert values["seclab_logsearch_up"] == "0" and values["seclab_logsearch_documents"] == "12"
    assert values["seclab_logship_queue_size"] == "15" and values["seclab_logship_discarded_total"] == "4"
    assert values["seclab_logship_rejected_total"] == "2" and values["seclab_logsearch_indices_deleted_total"] == "1"
    assert float(values["seclab_logsearch_newest_event_age_seconds"]) == 3.5
    keeper.write_atomically(tmp_path / "m.prom", text)
    assert (tmp_path / "m.prom").read_text() == text and (tmp_path / "m.prom").stat().st_mode & 0o777 == 0o644


def test_pipelines_reference_only_pipelines_that_exist_and_drop_secrets_first() -> None:
    pipes = resources.pipelines("seclab-logs")
    assert {"seclab-logs-common", "seclab-logs-ecs", "seclab-logs-text", "seclab-logs-nginx-error",
            "seclab-logs-nginx-access", "seclab-logs-modsecurity"} <= set(pipes)
    for name, body in pipes.items():
        called = [p["pipeline"]["name"] for p in body["processors"] if "pipeline" in p]
        assert set(called) <= set(pipes), name
        if name != "seclab-logs-common":
            # Secrets are redacted before any processor copies the message into another field.
            assert body["processors"][0] == {"pipeline": {"name": "seclab-logs-common"}}, name
    template = resources.index_template("seclab-logs")
    assert template["index_patterns"] == ["seclab-logs-*"]
    props = template["template"]["mappings"]["properties"]
    assert props["http"]["properties"]["request"]["properties"]["id"]["type"] == "keyword"
    assert props["@timestamp"]["type"] == "date"


def test_every_source_pipeline_exists_in_the_role_defaults() -> None:
    import yaml

    defaults = yaml.safe_load(Path("playbooks/roles/logsearch/defaults/main.yml").read_text())
    pipes = resources.pipelines("seclab-logs")
    for src in defaults["logsearch_sources"]:
        assert f"seclab-logs-{src['pipeline']}" in pipes, src
        assert src["format"] in ("ecs", "json", "text"), src
    datasets = {s["dataset"] for s in defaults["logsearch_sources"]}
    assert {"nginx.access", "nginx.error", "modsecurity.audit", "app", "worker", "keycloak", "postgresql",
            "redis"} <= datasets


def test_lab_definition_logging_defaults_and_refusals() -> None:
    lab = labdef.load()
    assert lab.logging.engine == "opensearch" and len(lab.logging.opensearch_sha256) == 64
    base = lab.model_dump(mode="json")
    for key, bad in (("heap", "512"), ("heap", "0m"), ("engine", "elasticsearch"), ("retention_days", 0),
                     ("opensearch_version", "3.0.0"), ("opensearch_sha256", "abc")):
        data = json.loads(json.dumps(base))
        data["logging"][key] = bad
        with pytest.raises(ValidationError):
            labdef.LabDefinition.model_validate(data)


def test_the_role_reads_the_rendered_lab_json(tmp_path: Path) -> None:
    from logsearch.__main__ import read_lab

    lab = labdef.load()
    rendered = tmp_path / "lab.json"
    rendered.write_text(json.dumps(labdef.as_vars(lab)))  # exactly what `lab up` writes to /etc/seclab/lab.json
    assert read_lab(rendered).logging == lab.logging
