"""`lab bench --capacity`: host and per-process CPU from /proc, which resource is named as saturated,
the login limiter raised only for capacity, and the report's words about the raised quotas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import capacity
from benchmarks.layers import Proc
from seclab.commands import bench_layers as bl

UVICORN = "/opt/seclab/venv/bin/uvicorn app.main:app --workers 2"


def test_host_cpu_counts_idle_and_iowait_as_not_busy() -> None:
    busy, total = capacity.host_cpu("cpu  100 5 50 800 45 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n")
    assert (busy, total) == (155, 1000)


def test_per_process_cores_use_own_time_and_new_processes_start_at_zero() -> None:
    before = {10: Proc(10, 1, 1, "uvicorn", UVICORN, ticks=0, own=100),
              11: Proc(11, 1, 10, "python", "python -c spawn", ticks=0, own=1000)}
    after = {10: Proc(10, 1, 1, "uvicorn", UVICORN, ticks=0, own=110),
             11: Proc(11, 1, 10, "python", "python -c spawn", ticks=0, own=1950),
             12: Proc(12, 5, 10, "python", "python -c spawn", ticks=0, own=300),
             99: Proc(99, 1, 1, "bash", "bash", ticks=0, own=5000)}
    procs = capacity.per_process_cores(before, after, seconds=10.0, tick=100)
    assert [(r["pid"], r["group"], r["cores"]) for r in procs] == [(11, "app", 0.95), (12, "app", 0.3), (10, "app", 0.01)]
    assert capacity.group_cores(procs)["app"] == pytest.approx(1.26)


def step(**kw: Any) -> dict[str, Any]:
    return {"processes": [], "host_busy": 0.5, "group_cores": {"app": 0.6, "nginx": 0.2}, "error_types": [],
            "p95_ms": 700.0, **kw}


def test_a_single_process_at_a_full_core_is_named_first() -> None:
    s = capacity.saturated(step(processes=[{"pid": 11, "group": "app", "comm": "python", "cores": 0.97}],
                                host_busy=0.95), ncpu=2)
    assert s["resource"] == "CPU of one app process" and "pid 11" in s["detail"]


def test_host_cpu_then_database_then_model_then_nothing() -> None:
    assert capacity.saturated(step(host_busy=0.93), 2)["resource"].startswith("host CPU")
    assert "app" in capacity.saturated(step(host_busy=0.93), 2)["detail"]
    # The lab's processes use 0.8 of 1.86 busy cores: the machine, not the lab, is the ceiling.
    assert "outside the lab" in capacity.saturated(step(host_busy=0.93), 2)["resource"]
    lab_busy = step(host_busy=0.95, group_cores={"app": 1.2, "worker": 0.5})
    assert capacity.saturated(lab_busy, 2)["resource"] == "host CPU"
    db = step(error_types=[{"cause": "db-unavailable", "count": 4}])
    assert capacity.saturated(db, 2)["resource"] == "PostgreSQL connections"
    assert capacity.saturated(step(replies_pending=3), 2)["resource"] == "the model server"
    assert capacity.saturated(step(), 2)["resource"] == "none saturated"


def test_login_limiter_is_raised_only_for_capacity(tmp_path: Path) -> None:
    import labdef
    from edge import render as edge_render

    lab = labdef.load(Path(__file__).resolve().parents[2] / "lab.yml")
    text = Path(edge_render.render(lab, tmp_path / "nginx", edge_pki_dir=str(tmp_path / "pki"))).read_text()
    assert "zone=edge_token:10m rate=30r/m;" in bl.raised_nginx_conf(text).decode()
    assert f"zone=edge_token:10m rate={bl.EDGE_RAISED_RATE};" in bl.raised_nginx_conf(text, logins=True).decode()


def test_report_says_in_words_that_quotas_were_raised(tmp_path: Path) -> None:
    from seclab.report.build import Options, build

    st = {"users": 10, "duration_s": 30, "requests": 300, "rps": 10.0, "p50_ms": 50.0, "p95_ms": 200.0, "p99_ms": 300.0,
          "errors": 0, "error_types": [], "login_failures": 0, "sessions": {}}
    data = {"kind": "seclab-bench-capacity", "p95_target_ms": 500, "max_error_rate": 0.0, "min_users": 5,
            "quotas": bl.QUOTA_NOTE, "steps": [st], "capacity": {"users": 10, "rps": 10.0, "p95_ms": 200.0},
            "saturated": {"resource": "not reached", "detail": "every step up to 10 users met the target"}}
    f = tmp_path / "capacity.json"
    f.write_text(json.dumps(data))
    out = build(Options(out=tmp_path / "r", bench=[f], run_compliance=False, run_lynis=False, collect_identity=False))
    assert out["performance"]["status"] == "ok" and out["performance"]["capacity"]["users"] == 10
    html = (tmp_path / "r" / "index.html").read_text()
    assert "quotas raised for the run only" in html and "First resource saturated" in html
