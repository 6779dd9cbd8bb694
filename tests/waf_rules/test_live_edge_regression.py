"""The deployed edge stops at least what stock CRS blocks at its paranoia level (live lab, seeded sample).

tests/waf_rules/test_tuning.py proves it for the whole CRS 3.3 regression corpus on local instances rendered
from the same templates (about 25 s per level). This runs the same comparison through the lab's running
edge, so a deployment difference (routes, modules, a stale rule file) cannot hide: a seeded sample of
SAMPLE stages (the whole corpus takes about 5 minutes paced under the edge's limit_req), re-rooted under
the edge's /api/ mount, against stock CRS started locally at the edge's level with the same bytes.
A stage counts as stopped when the edge refused it before any upstream (a WAF block, or nginx's own
400/404/405/413 for a request the WAF never needed to see); stock counts the same way.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import pytest

from benchmarks.waf import crs_regression as runner

pytestmark = pytest.mark.integration

SAMPLE = 150
SEED = 3304


@pytest.fixture(scope="module")
def edge_vs_stock(crs_regression: Path, waf_packages: None) -> dict[str, Any]:
    from labdef import load

    lab = load()
    ca = Path(lab.paths.pki) / "ca" / "ca-bundle.crt"
    reason = None
    if not (Path(lab.paths.etc) / "waf" / "crs-setup.conf").is_file() or not ca.is_file():
        reason = "lab edge not provisioned: run ./lab up"
    elif os.geteuid() != 0:
        reason = "needs root: the edge's logs are root-only"
    if reason:
        if os.environ.get("SECLAB_REQUIRE_LAB") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    args = argparse.Namespace(base_url="https://localhost", ca_cert=str(ca), start_local=False, levels=None,
                              configs="stock,tuned", no_stock=False, rate=None, lab_file=None, concurrency=4,
                              json_out=None, tests=str(crs_regression), mount=None, sample=SAMPLE, seed=SEED)
    return runner.run(args)


def _stopped(r: dict[str, Any]) -> int:
    return int(r["blocked"]) + int(r["edge_refused"])


def test_edge_stops_at_least_what_stock_blocks(edge_vs_stock: dict[str, Any]) -> None:
    edge, stock = edge_vs_stock["results"]
    assert (edge["target"], stock["target"]) == ("edge", "local")
    assert edge["paranoia_level"] == stock["paranoia_level"]
    assert edge["rate_limited"] == 0 and edge["unknown"] == 0, edge  # every stage got a verdict
    assert stock["blocked"] > SAMPLE // 2, "stock CRS blocked too little: is the WAF really on?"
    assert _stopped(edge) >= _stopped(stock), (
        f"PL{edge['paranoia_level']}: the edge stopped {_stopped(edge)}/{edge['sent']}, stock CRS {_stopped(stock)}")


def test_edge_blocks_are_attributed_to_rules_in_its_logs(edge_vs_stock: dict[str, Any]) -> None:
    """The verdicts come from the edge's logs by request id: most stages have their expected rule logged."""
    edge = edge_vs_stock["results"][0]
    assert edge["expected_rule_logged"] > edge["sent"] // 3, edge
