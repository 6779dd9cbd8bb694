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

from logsearch.search import REQUEST_ID_RE

REPO = Path(__file__).resolve().parents[2]
INFRA_DIR = REPO / "tests" / "infra"
CONTROL_RE = re.compile(r"^test_(nginx|postgres|redis|keys|net|proc|tls|os|sysctl|package|host)_(\d{2}[a-z]?)(?:_|\[|$)")
LAYERS = ("edge", "identity", "app", "data", "ai")

# How to produce each input (shown next to "not run").
COMMANDS = {
    "compliance": "./lab verify   (or: pytest tests/infra -m infra --junitxml compliance.junit.xml)",
    "attacks": "./lab attack --json attacks.json",
    "defence_demo": "flock /tmp/seclab-up.lock ./lab attack --edge detection-only --json attacks-detection-only.json"
                    "   (with --attacks from a blocking run)",
    "waf_fp": "./lab waf fp --levels 1,2 --json waf-fp.json   (the edge, with stock CRS locally beside it)",
    "waf_crs": "./lab waf crs --levels 1,2 --json waf-crs.json",
    "bench": "./lab bench --users 5,10,20 --duration 60 --json bench.json",
    "layers": "./lab bench --layers --json layers.json   (then ./lab report --bench layers.json)",
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
            "waivers": [w for w in waivers.get("waivers", []) if w["control"] == cid] + [
                {"control": cid, "part": f"not applicable here when: {n['condition']}", "instead": n["instead"],
                 "reason": n["reason"], "reference": n["reference"]}
                for n in waivers.get("not_applicable", []) if cid in n.get("controls", [])],
            "inputs": [i for i in waivers.get("inputs", []) if i["control"] == cid],
        })
    unmapped = by_control.get("unmapped", [])
    counts = {k: sum(1 for t in tests if t["status"] == k) for k in ("passed", "failed", "error", "pending", "skipped")}
    ccounts = {k: sum(1 for r in rows if r["status"] == k) for k in ("pass", "fail", "partial", "pending", "retired", "not run")}
    return {"status": "ok", "tests": counts, "controls": ccounts, "rows": rows, "unmapped": unmapped,
            "waivers": waivers.get("waivers", []), "inputs": waivers.get("inputs", [])}


# --- attacks -----------------------------------------------------------------------------------------

def event_links(result: dict[str, Any]) -> dict[str, str | None]:
    """A stopped attack's request id and the command that prints its events from every service.

    Files written before results carried `request_id` still have it in evidence.response. Only an id of
    the edge's shape is used: the command is meant to be pasted into a shell.
    """
    response = (result.get("evidence") or {}).get("response") or {}
    rid = result.get("request_id") or response.get("request_id") or response.get("body_request_id")
    if result.get("outcome") != "stopped" or not isinstance(rid, str) or not REQUEST_ID_RE.match(rid):
        return {"request_id": None, "logs_command": None}
    return {"request_id": rid, "logs_command": f"./lab logs --request-id {rid}"}


def attacks_summary(data: Any) -> dict[str, Any]:
    """`lab attack --json` ({"results": [...]}, attacks/model.py) -> matrix rows by layer."""
    results = data.get("results", []) if isinstance(data, dict) else data
    if not isinstance(results, list):
        raise ValueError("attack JSON has no results list")  # noqa: TRY004 (bad file content, not a caller's type error)
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
            **event_links(r),
        })
    counts = {k: sum(1 for r in rows if r["outcome"] == k) for k in ("stopped", "succeeded", "error")}
    by_layer = {layer: sum(1 for r in rows if r["layer"] == layer) for layer in LAYERS}
    target = data.get("target", {}) if isinstance(data, dict) else {}
    return {"status": "ok", "rows": rows, "counts": counts, "by_layer": by_layer, "layers": list(LAYERS),
            "unexpected": sum(1 for r in rows if not r["as_expected"]), "target": target}


# --- defence demo: the same attacks with the WAF blocking and in DetectionOnly -------------------------

# What the pair of outcomes shows, in the order the report lists them.
DEMO_KINDS = {
    "waf-only": "only the WAF stopped it: with the WAF in DetectionOnly it got through",
    "inner-layer": "the WAF stopped it first; without it an inner layer still stops it",
    "edge-without-waf": "the edge stops it without the WAF (nginx limits, sizes, methods)",
    "inner-both": "an inner layer stops it either way (not the WAF's)",
    "not-stopped": "not stopped in either run",
    "not-judged": "an error in one of the runs: not judged",
    "one-run-only": "in one run only",
}


def _demo_kind(b: dict[str, Any] | None, d: dict[str, Any] | None) -> str:
    if b is None or d is None:
        return "one-run-only"
    if "error" in (b.get("outcome"), d.get("outcome")):
        return "not-judged"
    b_stop, d_stop = b.get("outcome") == "stopped", d.get("outcome") == "stopped"
    if b_stop and b.get("layer") == "edge":
        if not d_stop:
            return "waf-only"
        return "edge-without-waf" if d.get("layer") == "edge" else "inner-layer"
    if b_stop or d_stop:
        return "inner-both"
    return "not-stopped"


def defence_demo_summary(blocking: Any, detection_only: Any) -> dict[str, Any]:
    """Pair `lab attack` (WAF blocking) with `lab attack --edge detection-only` case by case."""
    b_rows = {r["id"]: r for r in attacks_summary(blocking)["rows"]}
    d_sum = attacks_summary(detection_only)
    d_rows = {r["id"]: r for r in d_sum["rows"]}
    mode = (d_sum.get("target") or {}).get("edge_mode")
    if mode not in (None, "detection-only"):
        raise ValueError(f"the detection-only file was run with the WAF {mode!r}, not detection-only")
    order = list(DEMO_KINDS)
    rows = []
    for cid in list(b_rows) + [c for c in d_rows if c not in b_rows]:
        b, d = b_rows.get(cid), d_rows.get(cid)
        meta = b or d or {}
        kind = _demo_kind(b, d)
        rows.append({"id": cid, "title": meta.get("title", ""), "suite": meta.get("suite", ""), "refs": meta.get("refs", []),
                     "blocking": {"outcome": b["outcome"], "layer": b["layer"]} if b else None,
                     "detection_only": {"outcome": d["outcome"], "layer": d["layer"],
                                        "problem_type": d["evidence"].get("problem_type"),
                                        "status": d["evidence"].get("status")} if d else None,
                     "kind": kind, "meaning": DEMO_KINDS[kind]})
    rows.sort(key=lambda r: order.index(r["kind"]))
    counts = {k: sum(1 for r in rows if r["kind"] == k) for k in order}
    waf_stopped = counts["waf-only"] + counts["inner-layer"] + counts["edge-without-waf"]
    return {"status": "ok", "rows": rows, "counts": counts, "kinds": DEMO_KINDS, "waf_stopped": waf_stopped,
            "detection_only_by_layer": d_sum["by_layer"], "detection_only_target": d_sum["target"]}


# --- WAF -----------------------------------------------------------------------------------------------

def waf_fp_summary(data: dict[str, Any]) -> dict[str, Any]:
    """benchmarks/waf/falsepositives.py JSON -> one row per target/config/paranoia level."""
    rows = []
    for r in data.get("results", []):
        a, c = r.get("all", {}), r.get("code_heavy", {})
        rows.append({"config": r.get("config"), "target": r.get("target", "local"),
                     "paranoia_level": r.get("paranoia_level"), "base_url": r.get("base_url"),
                     "measured": a.get("measured"), "blocked": a.get("blocked_403"), "block_rate": a.get("block_rate"),
                     "code_measured": c.get("measured"), "code_blocked": c.get("blocked_403"),
                     "code_block_rate": c.get("block_rate"), "too_large": a.get("too_large_413"),
                     "retried_429": r.get("retried_429", 0), "rules": r.get("rules_in_blocks", {}),
                     "rule_files": r.get("rule_files_in_blocks", {})})
    return {"status": "ok", "prompts": data.get("unique_prompts"), "corpus": data.get("corpus"), "rows": rows}


def waf_crs_summary(data: dict[str, Any]) -> dict[str, Any]:
    """benchmarks/waf/crs_regression.py JSON -> detection rate per target/config/level, and per rule file."""
    results = data.get("results", [])
    rows = [{"config": r.get("config"), "target": r.get("target", "local"), "paranoia_level": r.get("paranoia_level"),
             "stages": r.get("stages"), "sent": r.get("sent"), "blocked": r.get("blocked"),
             "block_rate": r.get("block_rate"), "expected_rule_logged": r.get("expected_rule_logged"),
             "edge_refused": r.get("edge_refused"), "rate_limited": r.get("rate_limited"),
             "no_answer": r.get("no_answer"), "skipped": r.get("skipped")} for r in results]
    columns = [f"{r.get('config')} PL{r.get('paranoia_level')}" for r in results]
    files = sorted({f for r in results for f in (r.get("per_file") or {})})
    per_file = [{"file": f,
                 "stages": max((r.get("per_file") or {}).get(f, {}).get("stages", 0) for r in results),
                 "blocked": [(r.get("per_file") or {}).get(f, {}).get("blocked") for r in results]} for f in files]
    return {"status": "ok", "tests": data.get("tests"), "left_out": data.get("left_out", {}), "mount": data.get("mount"),
            "sample": data.get("sample"), "rows": rows, "columns": columns, "per_file": per_file}


# --- performance ---------------------------------------------------------------------------------------

BENCH_KEYS = ("users", "duration_s", "requests", "rps", "p50_ms", "p95_ms", "p99_ms", "errors", "p95_target_ms",
              "meets_target", "error_types", "sessions", "verdict", "login_failures")


def bench_summary(runs: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """`lab bench --json` files (benchmarks/runner.py) -> one row per user-count step, sorted by users,
    and the maximum users held with what limited it (benchmarks/analysis.py: the same rules as the run).

    A file is either a stepped run (`steps: [...]`) or an older single-run summary (`users` at the top).
    """
    from benchmarks import analysis

    rows: list[dict[str, Any]] = []
    target = max_err = min_users = None
    for name, d in runs:
        steps: list[dict[str, Any]] = d["steps"] if isinstance(d.get("steps"), list) else [d]
        target = target or d.get("p95_target_ms")
        max_err = d.get("max_error_rate", max_err)
        min_users = d.get("min_users", min_users)
        for st in steps:
            missing = [k for k in ("users", "p50_ms", "p95_ms") if k not in st]
            if missing:
                raise ValueError(f"{name}: not a lab bench summary (missing {missing})")
            row = {k: st.get(k) for k in BENCH_KEYS}
            row["error_types"] = row["error_types"] or []
            row["evidence"] = name
            target = target or st.get("p95_target_ms")
            rows.append(row)
    rows.sort(key=lambda r: (r["users"], r["evidence"]))
    if target is None:
        raise ValueError("no p95 target in the bench files")
    concl = analysis.summarise(rows, p95_target_ms=float(target), max_error_rate=float(max_err or 0.0),
                               min_users=int(min_users or 1))
    for r in rows:
        r["p95_target_ms"] = target
    head = next((d for _, d in runs if d.get("steps")), {})
    return {"status": "ok", "rows": rows, "target_ms": target, "max_error_rate": max_err or 0.0,
            "think_s": head.get("think_s"), "spawn_rate": head.get("spawn_rate"), "accounts": head.get("accounts", []),
            # `lab bench --capacity`: quotas raised for the run (said in words), the capacity and what saturated.
            "quotas": head.get("quotas"), "capacity": head.get("capacity"), "saturated": head.get("saturated"),
            # `--capacity --profile`: py-spy's top five by self-time of the app and the worker at the last step.
            "profiles": head.get("profiles"),
            **concl}


def is_layers(data: Any) -> bool:
    """A `lab bench --layers --json` file (benchmarks/layers.py), as opposed to a stepped run."""
    return isinstance(data, dict) and (data.get("kind") == "seclab-bench-layers" or ("read" in data and "write" in data))


def layers_summary(name: str, data: dict[str, Any]) -> dict[str, Any]:
    """`lab bench --layers --json` -> the layer table: rows of read and write with CPU ms per request by
    group (and their total), the guard's share of the write, and how the run was made."""
    from benchmarks import layers

    try:
        layers.check_shape(data)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    groups = [g for g in layers.GROUPS if any(r["cpu_s_per_request"].get(g) for op in layers.OPS for r in data[op])]
    out: dict[str, Any] = {"status": "ok", "groups": groups, "guard": data.get("guard", {}), "run": data.get("run", {}),
                           "evidence": name}
    for op in layers.OPS:
        rows = []
        for r in data[op]:
            cpu = {g: (None if v is None else round(1000 * float(v), 3)) for g, v in r["cpu_s_per_request"].items()}
            total = sum(v for v in cpu.values() if v is not None)
            rows.append({**r, "cpu_ms": cpu, "cpu_ms_total": round(total, 3)})
        out[op] = rows
    return out


def layers_compare(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """Two `layers_summary` results (the first and the last --bench layer file) row by row, matched by op and
    path: requests/s, ratio to the bare app, nginx and total CPU ms per request, each before and after. Why:
    an optimisation is shown as two runs of the same tool on the same host, not as numbers quoted by hand."""
    out: list[dict[str, Any]] = []
    for op in ("read", "write"):
        old = {r["path"]: r for r in before[op]}
        for r in after[op]:
            b = old.get(r["path"])
            if b is None:
                continue
            out.append({"op": op, "path": r["path"], "rps": (b["rps"], r["rps"]), "ratio": (b["ratio"], r["ratio"]),
                        "nginx_ms": (b["cpu_ms"].get("nginx"), r["cpu_ms"].get("nginx")),
                        "total_ms": (b["cpu_ms_total"], r["cpu_ms_total"])})
    return out


# --- TLS (testssl.sh) ------------------------------------------------------------------------------------

def tls_summary(data: dict[str, Any]) -> dict[str, Any]:
    """benchmarks/tls/testssl.py summary JSON; a failed scan is "not run" with its message."""
    if data.get("failed"):
        return {"status": "not run", "command": COMMANDS["tls"], "reason": str(data.get("msg", "scan failed"))}
    notable = data.get("medium_or_above", [])
    return {"status": "ok", "target": data.get("target"), "counts": data.get("counts", {}),
            "highlights": data.get("highlights", {}), "notable": notable,
            "open_findings": sum(1 for f in notable if not f.get("accepted_because"))}
