"""Live: a stopped attack's request id (attack results, the report's `./lab logs` command) finds its
events in the centralized logs - the edge's access log and the WAF's error-log lines at least.

Runs `./lab attack --suite injection` as a user does, against the provisioned lab, as root.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from labdef import LabDefinition
from logsearch.search import dataset_of
from seclab.report.inputs import event_links

from .live_support import live_lab, wait_for_datasets

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]


def test_a_blocked_attacks_request_id_finds_its_events(tmp_path: Path) -> None:
    lab: LabDefinition = live_lab()
    out = tmp_path / "attacks.json"
    proc = subprocess.run([sys.executable, "-m", "seclab.cli", "attack", "--suite", "injection", "--json", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=800, check=False)
    assert out.is_file(), (proc.stdout + proc.stderr)[-3000:]
    results = json.loads(out.read_text())["results"]
    blocked = [r for r in results if r["outcome"] == "stopped" and r["layer"] == "edge" and r.get("request_id")]
    assert blocked, [(r["id"], r["outcome"], r["layer"], r.get("request_id")) for r in results]
    case = blocked[0]
    rid = case["request_id"]
    assert event_links(case)["logs_command"] == f"./lab logs --request-id {rid}"
    events = wait_for_datasets(lab, rid, {"nginx.access", "nginx.error"})
    datasets = {dataset_of(e) for e in events}
    assert {"nginx.access", "nginx.error"} <= datasets, (case["id"], rid, datasets)
    access = next(e for e in events if dataset_of(e) == "nginx.access")
    assert access["http"]["request"]["id"] == rid and str(access["http"]["response"]["status_code"]) == "403"
    # The command the report prints, run as printed: the same events, from the CLI.
    cli = subprocess.run([sys.executable, "-m", "seclab.cli", "logs", "--request-id", rid, "--json"], cwd=REPO,
                         capture_output=True, text=True, timeout=120, check=True)
    printed = json.loads(cli.stdout)
    assert {"nginx.access", "nginx.error"} <= {dataset_of(e) for e in printed}
