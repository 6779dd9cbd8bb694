"""Lynis host audit: run it (bounded in time) and read its machine report.

Why lynis: an independent, widely used host audit (CISOfy, Debian package `lynis`) gives the report a
number that does not come from our own checks. Its hardening index is a trend, not a pass mark: a fresh
Debian 12 host of this kind scores about 56. We read `--report-file` (key=value lines, `name[]=` for
lists), never the coloured screen output, which changes between versions.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

LYNIS_CMD = "lynis audit system --quick --no-colors --report-file REPORT"
EXPLAINED = Path(__file__).resolve().parents[2] / "tests" / "infra" / "lynis_explained.yml"
"""Why each lynis warning or suggestion that remains after `./lab up` remains (issue 18: every one is
fixed or explained). Next to waivers.yml: the same rule, nothing left unexplained silently."""
DEFAULT_TIMEOUT_S = 600


class LynisError(RuntimeError):
    """Lynis is missing, timed out or wrote no report: the report shows the reason, not a number."""


def parse(text: str) -> dict[str, Any]:
    """A lynis report file -> index, counts and the warning/suggestion entries (id, text, evidence)."""
    scalars: dict[str, str] = {}
    lists: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        if key.endswith("[]"):
            lists.setdefault(key[:-2], []).append(value)
        else:
            scalars[key] = value

    def entries(name: str) -> list[dict[str, str]]:
        out = []
        for raw in lists.get(name, []):
            parts = raw.split("|")
            out.append({"id": parts[0], "text": parts[1] if len(parts) > 1 else "",
                        "details": "|".join(p for p in parts[2:] if p and p != "-")})
        return out

    index = scalars.get("hardening_index")
    warnings, suggestions = entries("warning"), entries("suggestion")
    return {
        "hardening_index": int(index) if index and index.isdigit() else None,
        "warnings": len(warnings),
        "suggestions": len(suggestions),
        "warning_list": warnings,
        "suggestion_list": suggestions,
        "tests_performed": int(scalars["lynis_tests_done"]) if scalars.get("lynis_tests_done", "").isdigit() else None,
        "lynis_version": scalars.get("lynis_version"),
        "report_datetime": scalars.get("report_datetime_end") or scalars.get("report_datetime_start"),
        "os": " ".join(x for x in (scalars.get("os_name"), scalars.get("os_version")) if x) or None,
    }


def run(report_file: Path | None = None, timeout_s: int = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """Run lynis as root and parse its report; the report file is kept at `report_file` as evidence."""
    exe = shutil.which("lynis")
    if exe is None:
        raise LynisError("lynis is not installed (apt-get install -y lynis)")
    keep = report_file is not None
    tmpdir = None if keep else tempfile.mkdtemp(prefix="seclab-lynis-")
    path = report_file if report_file is not None else Path(str(tmpdir)) / "lynis-report.dat"
    log = path.with_suffix(".log")
    cmd = [exe, "audit", "system", "--quick", "--no-colors", "--report-file", str(path), "--logfile", str(log)]
    try:
        subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise LynisError(f"lynis did not finish within {timeout_s}s") from None
    if not path.exists():
        raise LynisError(f"lynis wrote no report to {path}")
    data = parse(path.read_text(encoding="utf-8", errors="replace"))
    data["report_file"] = str(path) if keep else None
    data["command"] = " ".join(cmd)
    if tmpdir:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return data


def load_explained(path: Path = EXPLAINED) -> list[dict[str, Any]]:
    """The explanations: [{id, why, reference, match?}] (match: a substring the finding's text or details
    must contain, for lynis tests that report several different findings under one id)."""
    import yaml

    if not path.exists():
        return []
    return list((yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("explained", []))


def explain(data: dict[str, Any], explained: list[dict[str, Any]]) -> dict[str, Any]:
    """Attach to every warning and suggestion its explanation (`why`, `reference`) or mark it unexplained;
    `unexplained` counts the ones nobody has answered yet (the report shows them in red)."""
    missing = 0
    for entry in data.get("warning_list", []) + data.get("suggestion_list", []):
        hay = f"{entry.get('text', '')} {entry.get('details', '')}"
        hit = next((e for e in explained if e["id"] == entry["id"] and e.get("match", "") in hay), None)
        if hit is None:
            entry["why"], entry["reference"], entry["explained"] = "", "", False
            missing += 1
        else:
            entry["why"], entry["reference"], entry["explained"] = hit["why"], hit.get("reference", ""), True
    data["unexplained"] = missing
    return data
