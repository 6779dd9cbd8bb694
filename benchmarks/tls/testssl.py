"""Scan a TLS endpoint with testssl.sh and summarise its findings by severity (JSON for the lab report).

    python -m benchmarks.tls.testssl                         # the lab edge: localhost:<ports.edge_https>
    python -m benchmarks.tls.testssl --target 127.0.0.1:18443 --ca-file /tmp/pki/ca/ca-bundle.crt \
        --json out.json --raw-json raw.json

Why testssl.sh: an independent, widely used scanner (Debian package `testssl.sh`, binary `testssl`)
checks what our own tests assert (Mozilla "intermediate", HSTS, no legacy protocols) from the
outside, and finds what we did not think of. Exit status: 0, or 1 when a finding is at or above
--fail-on (default HIGH), 2 when the scan could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "WARN", "OK", "INFO", "DEBUG")
# Findings that follow from documented lab decisions; reported under "accepted", never silently dropped.
ACCEPTED: dict[str, str] = {
    "cipher_order": "Mozilla intermediate sets ssl_prefer_server_ciphers off: every offered suite is strong, "
    "the client picks what its hardware does fastest",
    "cert_revocation": "lab CA: leaves carry no CRL/OCSP URI; short-lived leaves plus local CRLs (pki/README.md)",
}
RANK = {"CRITICAL": 5, "HIGH": 4, "MEDIUM": 3, "LOW": 2, "WARN": 1, "OK": 0, "INFO": 0, "DEBUG": 0}


def find_testssl() -> str | None:
    """Debian installs `testssl`; upstream checkouts call it `testssl.sh`."""
    for name in ("testssl", "testssl.sh"):
        path = shutil.which(name)
        if path:
            return path
    return None


def lab_settings() -> dict[str, Any]:
    """The lab edge, its CA bundle and the certificate renewal point, from the lab definition."""
    sys.path.insert(0, str(REPO))
    from labdef import load

    lab = load()
    return {
        "target": f"{lab.edge.host_names[0]}:{lab.ports.edge_https}",
        "ca_file": str(Path(lab.paths.pki) / "ca" / "ca-bundle.crt"),
        # Leaves live 30 days and are renewed with a third left: only an overdue renewal is a finding.
        "renew_days": max(1, int(lab.pki.leaf_lifetime_days * lab.pki.renew_fraction)),
    }


def summarise(findings: list[dict[str, Any]], target: str, accepted: dict[str, str]) -> dict[str, Any]:
    counts = Counter(str(f.get("severity", "INFO")).upper() for f in findings)
    notable = [
        {k: f.get(k) for k in ("id", "severity", "finding", "cve", "cwe") if f.get(k)}
        for f in findings
        if RANK.get(str(f.get("severity", "")).upper(), 0) >= RANK["MEDIUM"]
    ]
    notable.sort(key=lambda f: -RANK.get(str(f["severity"]), 0))
    for f in notable:
        if f["id"] in accepted:
            f["accepted_because"] = accepted[f["id"]]
    low = [
        {"id": f.get("id"), "finding": f.get("finding")}
        for f in findings
        if str(f.get("severity", "")).upper() in ("LOW", "WARN")
    ]
    by_id = {f.get("id"): f.get("finding") for f in findings}
    return {
        "target": target,
        "counts": {s: counts.get(s, 0) for s in SEVERITIES if counts.get(s, 0)},
        "medium_or_above": notable,
        "low_and_warn": low,
        "highlights": {
            k: by_id.get(k)
            for k in (
                "SSLv2",
                "SSLv3",
                "TLS1",
                "TLS1_1",
                "TLS1_2",
                "TLS1_3",
                "HSTS",
                "FS",
                "cipher_order",
                "overall_grade",
                "cert_chain_of_trust",
                "cert_trust",
            )
            if k in by_id
        },
    }


def load_findings(text: str) -> list[dict[str, Any]]:
    """testssl's flat JSON; a scan cut short by --timeout leaves the array unterminated."""
    try:
        return json.loads(text or "[]")
    except json.JSONDecodeError:
        cut = text[: text.rfind("}") + 1]
        return json.loads(cut + "]") if cut else []


def scan(
    testssl: str,
    target: str,
    ca_file: str | None,
    raw_json: Path,
    extra: list[str],
    timeout: int,
    renew_days: int,
) -> int:
    cmd = [
        testssl,
        "--quiet",
        "--color",
        "0",
        "--warnings",
        "off",
        "--jsonfile",
        str(raw_json),
        "--connect-timeout",
        "10",
        "--openssl-timeout",
        "10",
    ]
    if ca_file:
        cmd += [
            "--add-ca",
            ca_file,
        ]  # trust the lab CA, so chain findings are about the chain, not the anchor
    cmd += extra + [target]
    # testssl's expiry thresholds (default 60/30 days) assume year-long certificates: warn at twice
    # the renewal point, HIGH when the renewal is overdue.
    env = {**os.environ, "TERM": "dumb", "DAYS2WARN1": str(2 * renew_days), "DAYS2WARN2": str(renew_days)}
    proc = subprocess.run(  # noqa: PLW1510 - exit status inspected
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=timeout, env=env
    )
    if proc.returncode not in (0,) and not raw_json.exists():
        sys.stderr.write(proc.stderr[-2000:])
    return proc.returncode


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.tls.testssl", description=__doc__.splitlines()[0])
    p.add_argument("--target", help="host:port (default: the lab edge from lab.yml)")
    p.add_argument("--ca-file", help="CA bundle to trust (default: the lab CA when --target is not given)")
    p.add_argument("--json", type=Path, help="write the summary here (default: stdout)")
    p.add_argument("--raw-json", type=Path, help="keep testssl's own JSON findings here")
    p.add_argument("--fail-on", default="HIGH", choices=["CRITICAL", "HIGH", "MEDIUM", "LOW"])
    p.add_argument("--timeout", type=int, default=1200, help="seconds for the whole scan")
    p.add_argument("--extra", action="append", default=[], help="extra testssl option (repeatable)")
    args = p.parse_args(argv)

    testssl = find_testssl()
    if testssl is None:
        print(json.dumps({"failed": True, "msg": "testssl.sh not installed (apt-get install testssl.sh)"}))
        return 2
    settings = lab_settings()
    target, ca_file = args.target, args.ca_file
    if target is None:
        target = settings["target"]
        ca_file = ca_file or settings["ca_file"]
    with tempfile.TemporaryDirectory(prefix="seclab-testssl-") as tmp:
        raw = args.raw_json or Path(tmp) / "testssl.json"
        if raw.exists():
            raw.unlink()  # testssl refuses to overwrite
        started = time.time()
        rc = scan(testssl, target, ca_file, raw, args.extra, args.timeout, settings["renew_days"])
        if not raw.exists():
            print(
                json.dumps({"failed": True, "msg": f"testssl exited {rc} without findings", "target": target})
            )
            return 2
        findings = load_findings(raw.read_text())
    version = subprocess.run(check=False, args=[testssl, "--version"], capture_output=True, text=True).stdout
    summary = summarise(findings, target, ACCEPTED)
    match = re.search(r"testssl(?:\.sh)?\s+(\d[\w.\-]*)", re.sub(r"\x1b\[[0-9;]*m", "", version))
    summary["tool"] = {"name": "testssl.sh", "path": testssl, "version": match.group(1) if match else None}
    summary["duration_s"] = round(time.time() - started, 1)
    summary["testssl_exit"] = rc
    summary["fail_on"] = args.fail_on
    summary["renew_days"] = settings["renew_days"]
    summary["ok"] = not any(
        RANK[f["severity"]] >= RANK[args.fail_on] and "accepted_because" not in f
        for f in summary["medium_or_above"]
    )
    text = json.dumps(summary, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    else:
        print(text)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
