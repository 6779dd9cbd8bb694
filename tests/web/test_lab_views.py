"""The lab-admin page's data: the merged audit log's cursor and the edge refusal log's reader."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from app.core.problems import Problem
from app.crud import lab_views

ROOT = Path(__file__).resolve().parents[2]


def test_audit_cursor_round_trips_and_fits_the_query_pattern() -> None:
    ts = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    cur = lab_views.encode_audit_cursor(ts, 9_007_199_254_740_993)
    assert len(cur) <= 64 and cur.replace("-", "").replace("_", "").isalnum()
    assert lab_views.decode_audit_cursor(cur) == (ts, 9_007_199_254_740_993)
    assert lab_views.decode_audit_cursor(None) is None


@pytest.mark.parametrize("bad", ["djE6MQ", "eHh4", "!!!", "djE6MS4y" + "MA" * 20, "djI6MS4y"])
def test_bad_audit_cursors_are_422(bad: str) -> None:
    with pytest.raises(Problem) as exc:
        lab_views.decode_audit_cursor(bad)
    assert exc.value.status == 422


def test_latest_refusals_newest_first_bounded_and_robust(tmp_path: Path) -> None:
    lines = [json.dumps({"ts": f"t{i}", "request_id": f"rid-{i:08d}", "status": "403" if i % 2 else "429",
                         "method": "POST", "path": "/api/v1/x", "client": "10.0.0.1"}) for i in range(30)]
    lines.insert(5, "not json")
    lines.insert(7, json.dumps({"status": "403"}))  # no request id: skipped
    (tmp_path / lab_views.EDGE_REFUSALS_FILE).write_text("\n".join(lines) + "\n")
    got = asyncio.run(lab_views.latest_refusals(str(tmp_path), 3))
    assert [g["request_id"] for g in got] == ["rid-00000029", "rid-00000028", "rid-00000027"]
    assert [g["cause"] for g in got] == ["waf-blocked", "rate-limited", "waf-blocked"]
    assert asyncio.run(lab_views.latest_refusals(str(tmp_path / "none"), 3)) == []


def test_a_huge_log_is_read_from_its_end_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lab_views, "REFUSAL_TAIL_BYTES", 300)
    rows = [json.dumps({"ts": "t", "request_id": f"rid-{i:08d}", "status": "404"}) for i in range(100)]
    (tmp_path / lab_views.EDGE_REFUSALS_FILE).write_text("\n".join(rows) + "\n")
    got = asyncio.run(lab_views.latest_refusals(str(tmp_path), 100))
    assert 0 < len(got) < 10 and got[0]["request_id"] == "rid-00000099"


def test_the_edge_writes_the_file_the_app_reads() -> None:
    defaults = yaml.safe_load((ROOT / "playbooks/roles/edge/defaults/main.yml").read_text())
    assert defaults["edge_refusals_log"].endswith("/" + lab_views.EDGE_REFUSALS_FILE)
