"""The lab-admin page's data: the merged audit log's cursor and the edge refusal log's reader."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

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


class FakeTenantDB:
    """Stands in for a tenant transaction (the SQL's keyset is checked live in tests/web/test_web_edge.py)."""

    def __init__(self, rows: list[dict[str, object]]) -> None:
        self.rows = rows
        self.calls: list[tuple[str, list[object] | None]] = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def execute_query_dict(self, sql: str, args: list[object] | None) -> list[dict[str, object]]:
        self.calls.append((sql, args))
        return self.rows


def test_merged_audit_interleaves_tenants_newest_first_and_pages() -> None:
    def at(s: int) -> datetime:
        return datetime(2026, 1, 1, 0, 0, s, tzinfo=UTC)

    dbs = {
        "acme": FakeTenantDB([{"id": 7, "ts": at(9), "actor": "a", "action": "x", "target": "", "detail": ""},
                              {"id": 6, "ts": at(5), "actor": "a", "action": "x", "target": "", "detail": ""}]),
        "globex": FakeTenantDB([{"id": 3, "ts": at(7), "actor": "b", "action": "y", "target": "", "detail": ""}]),
    }
    rows, nxt = asyncio.run(lab_views.merged_audit(lambda t: dbs[t], ["acme", "globex"], 2, None))
    assert [(r["scope"], r["id"]) for r in rows] == [("acme", 7), ("globex", 3)]
    assert nxt is not None and lab_views.decode_audit_cursor(nxt) == (at(7), 3)
    assert "LIMIT 3" in dbs["acme"].calls[0][0] and dbs["acme"].calls[0][1] is None
    asyncio.run(lab_views.merged_audit(lambda t: dbs[t], ["acme"], 2, (at(7), 3)))
    assert "WHERE (ts, id) < ($1, $2)" in dbs["acme"].calls[1][0] and dbs["acme"].calls[1][1] == [at(7), 3]
