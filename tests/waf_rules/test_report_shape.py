"""What the WAF runners write is what `lab report` reads: real runner output, through the report builder.

The runners run for real on local instances (stock and tuned, PL2) with tiny inputs: five chat prompts
(one of them SQL that stock CRS blocks) and a seeded sample of CRS regression stages. Their JSON goes
into seclab.report.build unchanged; the page and report.json must show the runners' numbers.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import pytest

from benchmarks.waf import crs_regression as crs_runner
from benchmarks.waf import falsepositives
from benchmarks.waf.common import write_json
from seclab.report.build import Options, build

PROMPTS = [
    "What is TLS and why does the handshake need certificates?",
    "Why is this query slow? SELECT name FROM users WHERE id = '1' OR '1'='1' UNION SELECT password FROM admins --",
    "Explain the difference between a list and a tuple in Python.",
    "How do I rotate nginx logs without losing lines?",
    "Write a haiku about firewalls.",
]
STATUS = {"lab": "seclab", "edge": {"url": "https://localhost", "ca_cert": "ca.pem"},
          "idp": {"issuer": "https://localhost/realms/seclab", "kind": "stand-in"}, "services": {}}


def _args(**extra: Any) -> argparse.Namespace:
    return argparse.Namespace(base_url=None, ca_cert=None, start_local=True, levels="2", configs="stock,tuned",
                              no_stock=False, rate=None, lab_file=None, concurrency=4, json_out=None, **extra)


@pytest.fixture(scope="module")
def runner_files(tmp_path_factory: pytest.TempPathFactory, crs_regression: Path) -> tuple[Path, Path]:
    from tests.waf_rules.conftest import _require_waf_packages

    _require_waf_packages()
    d = tmp_path_factory.mktemp("waf-report")
    corpus = d / "chat-legit"
    corpus.mkdir()
    (corpus / "prompts.jsonl").write_text("".join(json.dumps({"text": t, "source": "test"}) + "\n" for t in PROMPTS))
    fp, crs = d / "waf-fp.json", d / "waf-crs.json"
    write_json(str(fp), falsepositives.run(_args(corpus=str(corpus), user="alice")))
    write_json(str(crs), crs_runner.run(_args(tests=str(crs_regression), mount=None, sample=40, seed=7)))
    return fp, crs


def test_report_reads_what_the_runners_write(runner_files: tuple[Path, Path], tmp_path: Path) -> None:
    fp_file, crs_file = runner_files
    fp, crs = json.loads(fp_file.read_text()), json.loads(crs_file.read_text())
    data = build(Options(out=tmp_path, run_compliance=False, waf_fp=fp_file, waf_crs=crs_file, run_lynis=False,
                         identity=STATUS))
    wf, wd = data["waf"]["falsepositives"], data["waf"]["detection"]
    assert wf["status"] == "ok" and wd["status"] == "ok", (wf, wd)

    # False positives: one row per result, the runner's numbers unchanged.
    assert [(r["config"], r["paranoia_level"]) for r in wf["rows"]] == [("stock", 2), ("tuned", 2)]
    for row, res in zip(wf["rows"], fp["results"]):
        assert row["target"] == res["target"] == "local"
        assert (row["measured"], row["blocked"], row["block_rate"]) == (
            res["all"]["measured"], res["all"]["blocked_403"], res["all"]["block_rate"])
        assert row["rule_files"] == res["rule_files_in_blocks"]
    stock_fp = wf["rows"][0]
    assert stock_fp["measured"] == 5 and stock_fp["blocked"] >= 1  # the SQL prompt
    assert "REQUEST-942-APPLICATION-ATTACK-SQLI" in stock_fp["rule_files"]

    # Detection: rows and the per-rule-file table.
    assert [r["blocked"] for r in wd["rows"]] == [r["blocked"] for r in crs["results"]]
    assert wd["columns"] == ["stock PL2", "tuned PL2"]
    assert sum(f["stages"] for f in wd["per_file"]) == 40
    for f in wd["per_file"]:
        assert f["blocked"] == [r["per_file"][f["file"]]["blocked"] for r in crs["results"]]
    assert wd["sample"] == {"size": 40, "seed": 7}

    html = (tmp_path / "index.html").read_text()
    section = html[html.index('id="waf"'):html.index('id="performance"')]
    for f in wd["per_file"]:
        assert f["file"] in section
    assert re.search(r"<td>stock</td><td>local</td><td class=\"num\">2</td><td class=\"num\">5</td>", section)
    assert "not run" not in section
