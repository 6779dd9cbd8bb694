"""Every attack suite against the provisioned lab, as `./lab attack` runs it: nothing gets through.

This is the lab's central claim, so it runs in `./lab test` (not only when someone types
`./lab attack`): 13 suites, black-box over HTTPS through the edge, each result attributed to the
layer that stopped it from real evidence (problem types, WAF rule ids in the edge's logs, guard
verdicts). The CLI runs as a subprocess exactly as a user runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import labdef
from tests.conftest import need

pytestmark = [pytest.mark.integration, pytest.mark.late, pytest.mark.timeout(1500)]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    lab = labdef.load()
    need(Path(lab.paths.etc, "lab.json").is_file() and os.geteuid() == 0,
         "the provisioned lab, as root (the attack evidence is read from the edge's root-only logs)")
    out = tmp_path_factory.mktemp("attacks") / "attacks.json"
    proc = subprocess.run([sys.executable, "-m", "seclab.cli", "attack", "--json", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=1400, check=False)
    assert out.is_file(), f"no report: {(proc.stdout + proc.stderr)[-3000:]}"
    data: dict[str, Any] = json.loads(out.read_text())
    data["returncode"] = proc.returncode
    data["output"] = proc.stdout[-3000:] + proc.stderr[-3000:]
    return data


def test_every_attack_is_stopped(report: dict[str, Any]) -> None:
    results = report["results"]
    assert len(results) >= 50, f"only {len(results)} cases ran"
    loose = [(r["id"], r["outcome"], r.get("evidence", {}).get("error")) for r in results if r["outcome"] != "stopped"]
    assert not loose, f"not stopped: {loose}"
    assert report["returncode"] == 0, report["output"]


def test_every_layer_stops_something(report: dict[str, Any]) -> None:
    # Defence in depth: each layer is exercised by at least one case and stops it (attacks/README.md).
    layers = Counter(r["layer"] for r in report["results"])
    assert {"edge", "identity", "app", "data", "ai"} <= set(layers), dict(layers)


def test_every_suite_ran(report: dict[str, Any]) -> None:
    suites = {r["suite"] for r in report["results"]}
    assert {"injection", "xss", "traversal", "command", "ssrf", "jwt", "bola", "mass_assignment", "bodies",
            "llm", "bruteforce", "headers", "sqlmap"} <= suites, suites
