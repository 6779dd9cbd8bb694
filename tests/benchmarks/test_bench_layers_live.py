"""`lab bench --layers` against the provisioned lab: a short run answers along every path, reads CPU for
the lab's process groups, and leaves the lab as it found it (WAF files, lab.json, nginx.conf, quotas)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def _state(lab: Any) -> dict[Path, bytes]:
    from attacks.edge_waf import NGINX_CONF, waf_conf_dir

    files = [Path(lab.paths.etc) / "lab.json", NGINX_CONF, *sorted(waf_conf_dir(lab).rglob("*.conf"))]
    return {p: p.read_bytes() for p in files if p.is_file()}


@pytest.fixture(scope="module")
def run() -> tuple[dict[str, Any], dict[Path, bytes], dict[Path, bytes]]:
    from labdef import load, status

    lab = load()
    need(os.geteuid() == 0, "root (the edge's client key, the lab's secrets and config)")
    need((Path(lab.paths.etc) / "waf" / "crs-setup.conf").is_file(), "a provisioned edge (./lab up)")
    need(status.collect(lab)["services"]["app"]["up"], "the app up (./lab up)")
    from seclab.commands import bench_layers

    before = _state(lab)
    data = bench_layers.run(lab, concurrency=2, warmup_s=2.0, duration_s=8.0)
    return data, before, _state(lab)


def test_every_path_answers_in_the_issue_shape(run: tuple[dict[str, Any], Any, Any]) -> None:
    from benchmarks import layers

    data = run[0]
    layers.check_shape(data)
    assert [r["path"] for r in data["read"]] == ["app direct (mTLS, loopback)", "edge TLS, WAF off",
                                                 "edge TLS + WAF PL1", "edge TLS + WAF PL2"]
    for op in ("read", "write"):
        for r in data[op]:
            assert r["rps"] > 0, (op, r, data["run"]["statuses"])
    # Only the expected answers: no 429 (quotas raised), no WAF block of the benchmark's own requests.
    for op, per_path in data["run"]["statuses"].items():
        for path, statuses in per_path.items():
            assert not {"429", "403", "0"} & set(statuses), (op, path, statuses)


def test_cpu_is_read_for_the_lab_process_groups(run: tuple[dict[str, Any], Any, Any]) -> None:
    data = run[0]
    bare, full = data["read"][0]["cpu_s_per_request"], data["read"][-1]["cpu_s_per_request"]
    assert bare["app"] and bare["app"] > 0
    assert full["nginx"] and full["nginx"] > 0
    assert bare["nginx"] is not None and bare["nginx"] < full["nginx"]  # the bare app row bypasses the edge
    assert data["write"][0]["cpu_s_per_request"]["worker"] > 0


def test_guard_share_comes_from_its_own_timing(run: tuple[dict[str, Any], Any, Any]) -> None:
    data = run[0]
    for path, g in data["guard"].items():
        timed = data["run"]["statuses"]["write"][path].get("201", 0)
        # Every timed write was screened (the warm-up adds more): a worker missed or mixed up fails here.
        assert g["messages"] >= timed > 0, (path, g, timed)
        assert g["mean_ms"] > 0 and 0 < g["share_of_write"] < 1, (path, g)


def test_the_lab_is_left_as_found(run: tuple[dict[str, Any], dict[Path, bytes], dict[Path, bytes]]) -> None:
    _, before, after = run
    assert after == before


def test_no_account_is_left_over_a_limit(run: tuple[dict[str, Any], Any, Any]) -> None:
    """The run sent hundreds of requests a minute per account with the quotas raised; with the quotas
    back, the counters must be back too, or every account would be refused for the rest of the window."""
    import ssl
    import uuid

    import httpx

    from labdef import load, status, tokens

    lab = load()
    ctx = ssl.create_default_context(cafile=str(status.ca_cert_path(lab)))
    for user in run[0]["run"]["accounts"]:
        auth = {"Authorization": f"Bearer {tokens.get_access_token(lab, user)}"}
        with httpx.Client(base_url=lab.edge_url, verify=ctx, headers=auth, timeout=30) as c:
            assert c.get("/api/v1/conversations").status_code == 200, user
            conv = c.post("/api/v1/conversations", json={"title": "after bench"}).json()["id"]
            r = c.post(f"/api/v1/conversations/{conv}/messages", json={"content": "Hello after the bench"},
                       headers={"Idempotency-Key": str(uuid.uuid4())})
            assert r.status_code in (201, 202), (user, r.status_code, r.text[:200])
