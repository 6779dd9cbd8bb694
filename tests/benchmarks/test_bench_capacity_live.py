"""`lab bench --capacity` against the provisioned lab: one short step with the quotas raised records the
lab's processes and the host's CPU, names a resource, and leaves the lab as it found it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def _state(lab: Any) -> dict[Path, bytes]:
    from attacks.edge_waf import NGINX_CONF

    files = [Path(lab.paths.etc) / "lab.json", NGINX_CONF]
    return {p: p.read_bytes() for p in files if p.is_file()}


def test_one_step_names_a_resource_and_restores_the_quotas() -> None:
    from labdef import load, status

    lab = load()
    need(os.geteuid() == 0, "root (the lab's secrets and config)")
    need(status.collect(lab)["services"]["edge"]["up"], "the edge up (./lab up)")
    from seclab.commands import bench_capacity

    before = _state(lab)
    data = bench_capacity.run(lab, [2], 5, think_s=(1.0, 2.0))
    assert _state(lab) == before
    (step,) = data["steps"]
    assert step["requests"] > 0 and step["processes"], step
    assert {p["group"] for p in step["processes"]} <= {"nginx", "app", "worker", "postgres", "redis", "keycloak", "model"}
    assert 0 < step["host_busy"] <= 1
    assert data["saturated"]["resource"] and "quotas raised for the run only" in data["quotas"]
