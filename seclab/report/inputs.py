"""Readers of the report's inputs: compliance JUnit, attack results, WAF figures, load runs, testssl.

Why tolerant readers with a "not run" shape: the report is read by a person who must see what was
*not* measured as clearly as what was. A missing or unreadable input becomes
`{"status": "not run", "command": ..., "reason": ...}`, never a guessed number.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
INFRA_DIR = REPO / "tests" / "infra"
CONTROL_RE = re.compile(r"^test_(nginx|postgres|redis|keys|net|proc|tls)_(\d{2})(?:_|\[|$)")
LAYERS = ("edge", "identity", "app", "data", "ai")

# How to produce each input (shown next to "not run").
COMMANDS = {
    "compliance": "./lab verify   (or: pytest tests/infra -m infra --junitxml compliance.junit.xml)",
    "attacks": "./lab attack --json attacks.json",
    "waf_fp": "python -m benchmarks.waf.falsepositives --base-url https://localhost --ca-cert "
              "/etc/seclab/pki/ca/ca-bundle.crt --json waf-fp.json",
    "waf_crs": "python -m benchmarks.waf.crs_regression --base-url https://localhost --ca-cert "
               "/etc/seclab/pki/ca/ca-bundle.crt --json waf-crs.json",
    "bench": "./lab bench --users N --duration 60 --json bench-N.json   (one file per user count)",
    "tls": "python -m benchmarks.tls.testssl --json testssl.json",
    "lynis": "lynis audit system --quick --no-colors --report-file lynis-report.dat",
    "identity": "./lab status --json",
}


def not_run(key: str, reason: str) -> dict[str, Any]:
    return {"status": "not run", "command": COMMANDS[key], "reason": reason}


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def control_of(test_name: str) -> str | None:
    m = CONTROL_RE.match(test_name)
    return f"{m.group(1)}-{m.group(2)}" if m else None


def load_catalog(infra_dir: Path = INFRA_DIR) -> tuple[dict[str, Any], dict[str, Any]]:
    """controls.yml and waivers.yml of tests/infra: titles, references, waivers and DevSec inputs."""
    controls = yaml.safe_load((infra_dir / "controls.yml").read_text(encoding="utf-8"))["controls"]
    waivers = yaml.safe_load((infra_dir / "waivers.yml").read_text(encoding="utf-8"))
    return controls, waivers


# --- compliance --------------------------------------------------------------------------------------

def parse_junit(path: Path) -> list[dict[str, Any]]:
    """pytest JUnit XML -> one dict per test: nodeid, control, status, message.

    Status: passed, failed, error, skipped, or pending (an xfail: "not yet provisioned: <issue>").
    """
    root = ET.parse(path).getroot()
    out = []
    for tc in root.iter("testcase"):
        name = tc.get("name", "")
        cls = tc.get("classname", "")
        status, message = "passed", ""
        for child in tc:
            tag = child.tag
            text = (child.get("message") or child.text or "").strip()
            if tag == "failure":
                status, message = "failed", text
            elif tag == "error":
                status, message = "error", text
            elif tag == "skipped":
                is_xfail = child.get("type") == "pytest.xfail" or text.startswith("not yet provisioned")
                status, message = ("pending" if is_xfail else "skipped"), text
        file = cls.replace(".", "/") + ".py" if cls else ""
        out.append({"nodeid": f"{file}::{name}" if file else name, "name": name, "control": control_of(name),
                    "status": status, "message": message[:2000], "time_s": float(tc.get("time") or 0)})
    return out


def compliance_summary(tests: list[dict[str, Any]], controls: dict[str, Any], waivers: dict[str, Any]) -> dict[str, Any]:
    """Group test results by control, in catalog order; every catalog control gets a row."""
    by_control: dict[str, list[dict[str, Any]]] = {}
    for t in tests:
        by_control.setdefault(t["control"] or "unmapped", []).append(t)
    rows = []
    for cid, meta in controls.items():
        ts = by_control.get(cid, [])
        states = {t["status"] for t in ts}
        if meta.get("retired"):
            status = "retired"
        elif not ts:
            status = "not run"
        elif states & {"failed", "error"}:
            status = "fail"
        elif states == {"passed"}:
            status = "pass"
        elif "passed" in states:
            status = "partial"
        elif states <= {"pending", "skipped"}:
            status = "pending"
        else:
            status = "fail"
        rows.append({
            "id": cid, "title": meta.get("title", ""), "source": meta.get("source", ""), "refs": meta.get("refs", []),
            "status": status, "tests": ts,
            "waivers": [w for w in waivers.get("waivers", []) if w["control"] == cid],
            "inputs": [i for i in waivers.get("inputs", []) if i["control"] == cid],
        })
    unmapped = by_control.get("unmapped", [])
    counts = {k: sum(1 for t in tests if t["status"] == k) for k in ("passed", "failed", "error", "pending", "skipped")}
    ccounts = {k: sum(1 for r in rows if r["status"] == k) for k in ("pass", "fail", "partial", "pending", "retired", "not run")}
    return {"status": "ok", "tests": counts, "controls": ccounts, "rows": rows, "unmapped": unmapped,
            "waivers": waivers.get("waivers", []), "inputs": waivers.get("inputs", [])}


# --- attacks -----------------------------------------------------------------------------------------

def attacks_summary(data: Any) -> dict[str, Any]:
    """`lab attack --json` ({"results": [...]}, attacks/model.py) -> matrix rows by layer."""
    results = data.get("results", []) if isinstance(data, dict) else data
    if not isinstance(results, list):
        raise ValueError("attack JSON has no results list")
    rows = []
    for r in results:
        outcome = r.get("outcome", "error")
        layer = r.get("layer")
        expected = r.get("expected") or {}
        as_expected = bool(expected) and outcome == expected.get("outcome", "stopped") and (
            outcome != "stopped" or layer == expected.get("layer"))
        rows.append({
            "id": r.get("id", "?"), "title": r.get("title", ""), "suite": r.get("suite", ""), "refs": r.get("refs", []),
            "outcome": outcome, "layer": layer, "expected_layer": expected.get("layer"),
            "expected_outcome": expected.get("outcome"), "as_expected": as_expected,
            "evidence": r.get("evidence") or {},
        })
    counts = {k: sum(1 for r in rows if r["outcome"] == k) for k in ("stopped", "succeeded", "error")}
    by_layer = {layer: sum(1 for r in rows if r["layer"] == layer) for layer in LAYERS}
    target = data.get("target", {}) if isinstance(data, dict) else {}
    return {"status": "ok", "rows": rows, "counts": counts, "by_layer": by_layer, "layers": list(LAYERS),
            "unexpected": sum(1 for r in rows if not r["as_expected"]), "target": target}


# --- WAF -----------------------------------------------------------------------------------------------

def waf_fp_summary(data: dict[str, Any]) -> dict[str, Any]:
    """benchmarks/waf/falsepositives.py JSON -> one row per config/paranoia level."""
    rows = []
    for r in data.get("results", []):
        a, c = r.get("all", {}), r.get("code_heavy", {})
        rows.append({"config": r.get("config"), "paranoia_level": r.get("paranoia_level"), "base_url": r.get("base_url"),
                     "measured": a.get("measured"), "blocked": a.get("blocked_403"), "block_rate": a.get("block_rate"),
                     "code_measured": c.get("measured"), "code_blocked": c.get("blocked_403"),
                     "code_block_rate": c.get("block_rate"), "too_large": a.get("too_large_413"),
                     "rules": r.get("rules_in_blocks", {})})
    return {"status": "ok", "prompts": data.get("unique_prompts"), "corpus": data.get("corpus"), "rows": rows}


def waf_crs_summary(data: dict[str, Any]) -> dict[str, Any]:
    """benchmarks/waf/crs_regression.py JSON -> detection rate per config/paranoia level."""
    rows = [{"config": r.get("config"), "paranoia_level": r.get("paranoia_level"), "stages": r.get("stages"),
             "sent": r.get("sent"), "blocked": r.get("blocked"), "block_rate": r.get("block_rate"),
             "no_answer": r.get("no_answer"), "skipped": r.get("skipped")} for r in data.get("results", [])]
    return {"status": "ok", "tests": data.get("tests"), "left_out": data.get("left_out", {}), "rows": rows}


# --- performance ---------------------------------------------------------------------------------------

BENCH_KEYS = ("users", "duration_s", "requests", "rps", "p50_ms", "p95_ms", "p99_ms", "errors", "p95_target_ms", "meets_target")


def bench_summary(runs: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """`lab bench --json` summaries (benchmarks/runner.py), one per user count, sorted by users."""
    rows = []
    for name, d in runs:
        missing = [k for k in ("users", "p50_ms", "p95_ms") if k not in d]
        if missing:
            raise ValueError(f"{name}: not a lab bench summary (missing {missing})")
        row = {k: d.get(k) for k in BENCH_KEYS}
        row["evidence"] = name
        rows.append(row)
    rows.sort(key=lambda r: (r["users"], r["evidence"]))
    return {"status": "ok", "rows": rows}


# --- TLS (testssl.sh) ------------------------------------------------------------------------------------

def tls_summary(data: dict[str, Any]) -> dict[str, Any]:
    """benchmarks/tls/testssl.py summary JSON; a failed scan is "not run" with its message."""
    if data.get("failed"):
        return {"status": "not run", "command": COMMANDS["tls"], "reason": str(data.get("msg", "scan failed"))}
    notable = data.get("medium_or_above", [])
    return {"status": "ok", "target": data.get("target"), "counts": data.get("counts", {}),
            "highlights": data.get("highlights", {}), "notable": notable,
            "open_findings": sum(1 for f in notable if not f.get("accepted_because"))}
