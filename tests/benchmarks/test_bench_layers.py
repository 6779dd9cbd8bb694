"""`lab bench --layers`: CPU accounting from /proc snapshots, row math, the JSON shape, the report, and
that every switch of the lab (quotas, WAF mode, paranoia level) is undone whatever fails."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import labdef
from benchmarks import layers
from benchmarks.layers import Measured, Proc
from seclab.commands import attack as attack_cmd
from seclab.commands import bench_layers as bl

REPO = Path(__file__).resolve().parents[2]
TICK = 100


def proc(pid: int, ppid: int, comm: str, cmdline: str, ticks: int, start: int = 1) -> Proc:
    return Proc(pid=pid, start=start, ppid=ppid, comm=comm, cmdline=cmdline, ticks=ticks)


UVICORN = "/opt/seclab/venv/bin/python /opt/seclab/venv/bin/uvicorn app.main:app --host 127.0.0.1 --workers 2"
SPAWNED = "/opt/seclab/venv/bin/python -c from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=5)"
CELERY = "/opt/seclab/venv/bin/python /opt/seclab/venv/bin/celery -A app.worker.celery_app worker --pool prefork"
FLOWER = "/opt/seclab/venv/bin/python /opt/seclab/venv/bin/celery -A app.worker.celery_app flower --port=5555"


def snapshot(**ticks: int) -> dict[int, Proc]:
    """A process table: supervisord (1) with the lab's processes; `ticks` overrides by name."""
    t = {"master": 10, "w1": 20, "w2": 30, "celery": 5, "pool": 7, "flower": 50, "pm": 100, "be": 50,
         "nginx": 3, "nginxw": 4, "redis": 9, "java": 500, "llama": 40, "other": 999, **ticks}
    procs = [
        proc(1, 0, "supervisord", "/usr/bin/python3 /usr/bin/supervisord", 1),
        proc(10, 1, "uvicorn", UVICORN, t["master"]),
        proc(11, 10, "python", SPAWNED, t["w1"]),
        proc(12, 10, "python", SPAWNED, t["w2"]),
        proc(20, 1, "celery", CELERY, t["celery"]),
        proc(21, 20, "celery", CELERY, t["pool"]),
        proc(25, 1, "celery", FLOWER, t["flower"]),
        proc(30, 1, "postgres", "/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main", t["pm"]),
        proc(40, 1, "nginx", "nginx: master process nginx -c /etc/nginx/nginx.conf", t["nginx"]),
        proc(41, 40, "nginx", "nginx: worker process", t["nginxw"]),
        proc(50, 1, "redis-server", "/usr/bin/redis-server 127.0.0.1:0", t["redis"]),
        proc(60, 1, "java", "java -Dkc.home.dir=/opt/keycloak/current io.quarkus.bootstrap.runner.QuarkusEntryPoint",
             t["java"]),
        proc(70, 1, "python", "/opt/seclab/llama/bin/python -m llama_cpp.server --config_file x", t["llama"]),
        proc(80, 1, "bash", "bash", t["other"]),
    ]
    if t["be"] >= 0:
        procs.append(proc(31, 30, "postgres", "postgres: seclab_app seclab 127.0.0.1(5555) idle", t["be"]))
    return {p.pid: p for p in procs}


def test_parse_stat_reads_fields_after_a_comm_with_spaces_and_parens() -> None:
    stat = "4242 (my (odd) name) S 7 4242 4242 0 -1 4194560 1 0 0 0 11 22 33 44 20 0 1 0 98765 1 1 18446744073709551615"
    p = layers.parse_stat(4242, stat, "x")
    assert (p.comm, p.ppid, p.start, p.ticks) == ("my (odd) name", 7, 98765, 11 + 22 + 33 + 44)


def test_read_procs_reads_this_process() -> None:
    import os

    me = layers.read_procs()[os.getpid()]
    assert me.pid == os.getpid() and "python" in me.cmdline


def test_groups_follow_spawned_and_forked_children_and_leave_others_out() -> None:
    g = layers.assign_groups(snapshot())
    assert {pid: g.get(pid) for pid in (10, 11, 12, 20, 21, 25, 30, 31, 40, 41, 50, 60, 70, 80, 1)} == {
        10: "app", 11: "app", 12: "app", 20: "worker", 21: "worker", 25: None, 30: "postgres", 31: "postgres",
        40: "nginx", 41: "nginx", 50: "redis", 60: "keycloak", 70: "model", 80: None, 1: None}


def test_cpu_counts_a_finished_backend_once_through_its_reaper() -> None:
    """Backend 31 used 30 more ticks and exited (the postmaster reaped it: cutime +80); a new backend used 10."""
    before = snapshot()
    after = snapshot(pm=100 + 80, be=-1, w1=25)
    after[32] = proc(32, 30, "postgres", "postgres: seclab_app seclab 127.0.0.1(5556) idle", 10, start=9)
    cpu = layers.cpu_seconds(before, after, tick=TICK)
    assert cpu["postgres"] == pytest.approx(40 / TICK)
    assert cpu["app"] == pytest.approx(5 / TICK)
    assert cpu["nginx"] == 0 and cpu["keycloak"] == 0
    assert set(cpu) == set(layers.GROUPS)


def test_cpu_never_negative_when_a_group_restarted() -> None:
    cpu = layers.cpu_seconds(snapshot(master=500), snapshot(master=1), tick=TICK)
    assert cpu["app"] == 0


@pytest.mark.parametrize(("q", "want"), [(50, 50), (95, 95), (99, 99), (100, 100)])
def test_percentile_nearest_rank(q: float, want: float) -> None:
    assert layers.percentile([float(x) for x in range(1, 101)], q) == want


def test_percentile_edges() -> None:
    assert layers.percentile([], 95) == 0.0
    assert layers.percentile([7.0], 99) == 7.0


def measured(path: str, n: int, ms: float, seconds: float = 10.0, cpu_app: float = 1.0) -> Measured:
    return Measured(path=path, latencies_ms=[ms] * n, statuses={"200": n, "429": 2}, seconds=seconds,
                    cpu_s={**dict.fromkeys(layers.GROUPS, 0.0), "app": cpu_app})


def test_rows_have_the_issue_shape_and_ratio_to_the_bare_app() -> None:
    rs = layers.rows([measured("app", 400, 5.0, cpu_app=2.0), measured("edge", 100, 20.0)])
    assert [tuple(r) for r in rs] == [layers.ROW_KEYS] * 2
    assert rs[0]["rps"] == 40.0 and rs[1]["rps"] == 10.0
    assert (rs[0]["ratio"], rs[1]["ratio"]) == (1.0, 0.25)
    assert rs[0]["cpu_s_per_request"]["app"] == pytest.approx(2.0 / 400)  # only answered requests count
    assert rs[1]["p95_ms"] == 20.0


def test_result_passes_its_own_shape_check_and_bad_files_do_not() -> None:
    data = layers.result([measured("app", 10, 1.0)], [measured("app", 5, 50.0)], {"concurrency": 8})
    layers.check_shape(data)
    assert json.loads(json.dumps(data))["read"][0]["path"] == "app"
    assert data["run"]["statuses"]["read"]["app"] == {"200": 10, "429": 2}
    extra = json.loads(json.dumps(data))
    extra["read"][0]["users"] = 3
    with pytest.raises(ValueError, match="exactly the keys"):
        layers.check_shape(extra)
    with pytest.raises(ValueError, match="non-empty"):
        layers.check_shape({"read": [], "write": data["write"]})
    second_first = json.loads(json.dumps(data))
    second_first["write"][0]["ratio"] = 0.5
    with pytest.raises(ValueError, match="ratio 1.0"):
        layers.check_shape(second_first)


METRICS = """# TYPE process_start_time_seconds gauge
process_start_time_seconds {start}
# TYPE seclab_guard_duration_seconds histogram
seclab_guard_duration_seconds_bucket{{le="0.01"}} {count}
seclab_guard_duration_seconds_bucket{{le="+Inf"}} {count}
seclab_guard_duration_seconds_count {count}
seclab_guard_duration_seconds_sum {total}
"""


def test_guard_share_from_per_worker_scrapes() -> None:
    start, values = layers.guard_by_process(METRICS.format(start=1700000000.5, count=10, total=0.05))
    assert start == 1700000000.5 and values == (0.05, 10.0)
    # Two workers started in the same clock tick (same start time), each scraped several times.
    before = [(1.0, (0.05, 10.0)), (1.0, (0.10, 20.0)), (1.0, (0.05, 10.0)), (1.0, (0.10, 20.0))]
    after = [(1.0, (0.25, 50.0)), (1.0, (0.30, 60.0)), (1.0, (0.30, 60.0))]
    secs, n = layers.guard_delta(before, after)
    assert (round(secs, 6), n) == (0.4, 80)
    assert layers.guard_delta(before, [(1.0, (0.25, 50.0))]) == (0.0, 0)  # a worker missed: no number, not a wrong one
    idle = [(1.0, (0.0, 0.0)), (1.0, (0.0, 0.0))]  # two fresh workers look alike: still counted from zero
    assert layers.guard_delta(idle, after) == (pytest.approx(0.55), 110)
    g = layers.guard_share(secs, n, [100.0, 300.0])
    assert g == {"messages": 80, "mean_ms": 5.0, "share_of_write": 0.025}
    assert layers.guard_share(0.0, 0, [1.0])["mean_ms"] is None


def test_table_lines_show_every_row() -> None:
    data = layers.result([measured("app", 10, 1.0), measured("edge TLS", 5, 2.0)], [measured("app", 5, 50.0)], {})
    lines = layers.table_lines(data)
    assert len(lines) == 1 + 3 and "edge TLS" in lines[2] and lines[2].split()[0] == "read"


# --- restoration ---------------------------------------------------------------------------------------

def test_temporarily_written_restores_bytes_when_the_body_fails(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"deployed a\n")
    b.write_bytes(b"deployed b\n")
    seen: list[tuple[bytes, bytes]] = []
    with pytest.raises(RuntimeError, match="mid-run"), bl.temporarily_written(
            {a: b"raised a", b: b"raised b"}, lambda: seen.append((a.read_bytes(), b.read_bytes()))):
        assert a.read_bytes() == b"raised a"
        raise RuntimeError("mid-run")
    assert (a.read_bytes(), b.read_bytes()) == (b"deployed a\n", b"deployed b\n")
    assert seen == [(b"raised a", b"raised b"), (b"deployed a\n", b"deployed b\n")]


def test_temporarily_written_restores_when_applying_fails(tmp_path: Path) -> None:
    a = tmp_path / "a"
    a.write_bytes(b"deployed")
    calls: list[bytes] = []

    def apply() -> None:
        calls.append(a.read_bytes())
        if len(calls) == 1:
            raise OSError("restart failed")

    with pytest.raises(OSError), bl.temporarily_written({a: b"raised"}, apply):
        pytest.fail("the body must not run when applying failed")
    assert a.read_bytes() == b"deployed" and calls == [b"raised", b"deployed"]


@pytest.fixture
def deployed_lab(tmp_path: Path) -> tuple[Any, Path, Path]:
    """lab.json and the edge's nginx.conf as `./lab up` renders them, in a temp dir."""
    from edge import render as edge_render

    lab = labdef.load(REPO / "lab.yml")
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "lab.json").write_text(json.dumps(labdef.as_vars(lab), indent=2, sort_keys=True) + "\n")
    conf = edge_render.render(lab, tmp_path / "nginx", edge_pki_dir=str(tmp_path / "pki"))
    fake = SimpleNamespace(paths=SimpleNamespace(etc=str(etc)))
    return fake, etc / "lab.json", Path(conf)


def test_quotas_raised_for_the_body_then_restored_byte_for_byte(deployed_lab: tuple[Any, Path, Path]) -> None:
    from app.core.config import Settings

    fake, lab_json, conf = deployed_lab
    before = lab_json.read_bytes(), conf.read_bytes()
    applied: list[str] = []
    with pytest.raises(KeyboardInterrupt), bl.quotas_raised(fake, nginx_conf=conf, apply=lambda: applied.append("x")):
        raised = Settings(lab_file=str(lab_json)).load_lab()  # the app must accept the raised file
        assert raised.limits.rate_limits.per_user_per_minute == bl.RAISED_RATE_PER_MINUTE
        assert raised.ai.token_budget_per_tenant_per_hour == bl.RAISED_TOKENS_PER_HOUR
        text = conf.read_text()
        assert text.count(f"rate={bl.EDGE_RAISED_RATE};") == 2
        assert "zone=edge_token:10m rate=30r/m;" in text  # the login limiter stays
        raise KeyboardInterrupt
    assert (lab_json.read_bytes(), conf.read_bytes()) == before
    assert applied == ["x", "x"]


def test_nginx_conf_without_the_zones_is_refused() -> None:
    from labdef.errors import LabError

    with pytest.raises(LabError, match="found 0"):
        bl.raised_nginx_conf("http { }")


def test_restore_plan_puts_back_values_and_drops_what_the_run_added() -> None:
    before = {"seclab:rl:user:a:1": (b"7", 30_000), "seclab:budget:acme:u:x:5": (b"1200", 3_000_000),
              "seclab:rl:addr:b:1": (b"3", 2_000), "seclab:budget:acme:t:5": (b"9", -1)}
    now = {"seclab:rl:user:a:1", "seclab:rl:user:a:2", "seclab:budget:acme:u:x:5", "seclab:rl:addr:b:1"}
    sets, deletes = bl.restore_plan(before, now, elapsed_ms=10_000)
    assert sets == {"seclab:rl:user:a:1": (b"7", 20_000), "seclab:budget:acme:u:x:5": (b"1200", 2_990_000),
                    "seclab:budget:acme:t:5": (b"9", -1)}
    assert deletes == ["seclab:rl:addr:b:1", "seclab:rl:user:a:2"]  # expired meanwhile; made by the run


class FakeCounters:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def snapshot(self) -> dict[str, tuple[bytes, int]]:
        self.calls.append("snapshot")
        return {"k": (b"1", -1)}

    async def restore(self, before: dict[str, tuple[bytes, int]], elapsed_ms: int) -> dict[str, int]:
        self.calls.append(f"restore {sorted(before)}")
        return {}


def test_counters_are_put_back_after_the_files(deployed_lab: tuple[Any, Path, Path]) -> None:
    fake, _, conf = deployed_lab
    counters = FakeCounters()
    order: list[str] = []
    with pytest.raises(RuntimeError), bl.quotas_raised(fake, nginx_conf=conf, apply=lambda: order.append("apply"),
                                                       counters=counters):
        raise RuntimeError
    assert counters.calls == ["snapshot", "restore ['k']"]
    assert order == ["apply", "apply"]


def test_measure_paths_leaves_every_switch_when_a_row_fails() -> None:
    events: list[str] = []

    def switch(name: str) -> Any:
        @contextmanager
        def cm() -> Iterator[None]:
            events.append(f"enter {name}")
            try:
                yield
            finally:
                events.append(f"exit {name}")
        return cm

    paths = [bl.LayerPath(n, "https://x", True, switch(n)) for n in ("app", "waf-off", "pl1", "pl2")]

    def measure(p: bl.LayerPath, op: str) -> Measured:
        if p.label == "pl1" and op == "write":
            raise RuntimeError("lab broke")
        return measured(p.label, 1, 1.0)

    rows: list[str] = []
    with pytest.raises(RuntimeError, match="lab broke"):
        bl.measure_paths(paths, measure, lock=switch("lock"), quotas=switch("quotas"),
                         on_row=lambda op, m: rows.append(f"{op} {m.path}"))
    assert events == ["enter lock", "enter quotas", "enter app", "exit app", "enter waf-off", "exit waf-off",
                      "enter pl1", "exit pl1", "exit quotas", "exit lock"]
    assert rows == ["read app", "write app", "read waf-off", "write waf-off", "read pl1"]


def test_waf_off_renders_engine_off_and_blocking_comes_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from waf_rules import render

    lab = labdef.load(REPO / "lab.yml")
    conf = tmp_path / "waf"
    render.render(lab, conf, "/var/log/seclab/modsec_audit.json", mode_override="blocking")
    before = {p: p.read_bytes() for p in conf.rglob("*") if p.is_file()}
    reloads: list[str] = []
    monkeypatch.setattr(attack_cmd, "reload_edge", lambda nginx_conf=None: reloads.append(attack_cmd.engine_line(conf)))
    with pytest.raises(RuntimeError), attack_cmd.edge_waf_mode(lab, "off", conf_dir=conf):
        raise RuntimeError("row failed")
    assert reloads == ["SecRuleEngine Off", "SecRuleEngine On"]
    assert {p: p.read_bytes() for p in conf.rglob("*") if p.is_file()} == before


# --- the report -----------------------------------------------------------------------------------------

def test_report_shows_the_layer_table_and_chart(tmp_path: Path) -> None:
    from seclab.report.build import Options, build

    data = layers.result([measured("app direct", 400, 5.0), measured("edge TLS + WAF PL2", 200, 9.0)],
                         [measured("app direct", 40, 80.0), measured("edge TLS + WAF PL2", 30, 95.0)],
                         {"concurrency": 8, "duration_s": 10, "warmup_s": 3, "loadavg_before": [1.5, 1, 1],
                          "loadavg_after": [2, 1, 1], "quotas": bl.QUOTA_NOTE})
    data["guard"] = {"app direct": {"messages": 40, "mean_ms": 4.0, "share_of_write": 0.05}}
    f = tmp_path / "layers.json"
    f.write_text(json.dumps(data))
    out = build(Options(out=tmp_path / "r", bench=[f], run_compliance=False, run_lynis=False, collect_identity=False))
    ly = out["layers"]
    assert ly["status"] == "ok" and [r["path"] for r in ly["read"]] == ["app direct", "edge TLS + WAF PL2"]
    assert ly["read"][1]["ratio"] == 0.5 and ly["read"][0]["cpu_ms"]["app"] == pytest.approx(2.5)
    assert out["performance"]["status"] == "not run"  # a layer table is not a stepped run
    html = (tmp_path / "r" / "index.html").read_text()
    assert "edge TLS + WAF PL2" in html and "quotas raised for the run only" in html
    assert 'aria-labelledby="layers-title"' in html and "40 messages" in html


def test_report_shows_two_layer_runs_before_and_after(tmp_path: Path) -> None:
    from seclab.report.build import Options, build

    def run(edge_rps_n: int, nginx_s: float, load: float) -> dict[str, Any]:
        edge = Measured(path="edge TLS + WAF PL1", latencies_ms=[9.0] * edge_rps_n, statuses={"200": edge_rps_n},
                        seconds=10.0, cpu_s={**dict.fromkeys(layers.GROUPS, 0.0), "nginx": nginx_s})
        return layers.result([measured("app direct", 400, 5.0), edge], [measured("app direct", 40, 80.0)],
                             {"concurrency": 8, "duration_s": 10, "warmup_s": 3, "loadavg_before": [load, 1, 1],
                              "loadavg_after": [load, 1, 1], "quotas": bl.QUOTA_NOTE})

    before, after = tmp_path / "before.json", tmp_path / "after.json"
    before.write_text(json.dumps(run(120, 0.36, 7.5)))
    after.write_text(json.dumps(run(200, 0.4, 3.25)))
    out = build(Options(out=tmp_path / "r", bench=[before, after], run_compliance=False, run_lynis=False,
                        collect_identity=False))
    rows = {(c["op"], c["path"]): c for c in out["layers"]["compare"]["rows"]}
    edge = rows[("read", "edge TLS + WAF PL1")]
    assert edge["rps"] == (12.0, 20.0) and edge["ratio"] == (0.3, 0.5)
    assert edge["nginx_ms"] == (3.0, 2.0)  # 0.36 s / 120 requests, 0.4 s / 200
    assert ("write", "edge TLS + WAF PL1") not in rows  # a path only one run has is not compared
    html = (tmp_path / "r" / "index.html").read_text()
    assert 'id="layers-compare"' in html and "7.5" in html and "3.25" in html


def test_report_says_not_run_for_a_broken_layer_file(tmp_path: Path) -> None:
    from seclab.report.build import Options, build

    f = tmp_path / "layers.json"
    f.write_text(json.dumps({"kind": "seclab-bench-layers", "read": [{"path": "x"}], "write": []}))
    out = build(Options(out=tmp_path / "r", bench=[f], run_compliance=False, run_lynis=False, collect_identity=False))
    assert out["layers"]["status"] == "not run" and "exactly the keys" in out["layers"]["reason"]


def test_drive_counts_completions_in_the_window_and_snapshots_cpu_at_its_ends() -> None:
    import asyncio

    import httpx

    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return httpx.Response(200 if request.method == "GET" else 503, json={})

    async def bearer() -> str:
        return "tok"

    snaps = iter(["before", "after"])

    async def go(op: str) -> Measured:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="https://x") as client:
            return await layers.drive(client, op, [layers.Account("alice", bearer, "c1")], path="p", concurrency=2,
                                      warmup_s=0.05, duration_s=0.2, snapshot=lambda: next(snaps),
                                      cpu=lambda b, a: {"app": 1.0} if (b, a) == ("before", "after") else {})

    m = asyncio.run(go("read"))
    assert m.ok > 0 and m.errors == 0 and set(m.statuses) == {"200"} and m.cpu_s == {"app": 1.0}
    assert seen and set(seen) == {"Bearer tok"}
    snaps = iter(["before", "after"])
    w = asyncio.run(go("write"))
    assert w.ok == 0 and w.statuses["503"] > 0  # a refused write is counted, never timed
