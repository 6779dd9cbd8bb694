"""`lab report`: one page (HTML), one JSON and one JUnit file from the lab's test, attack and load runs.

Why files as options: attacks, WAF benchmarks and load runs take minutes to hours and need the edge;
the report reads their JSON files (`--attacks`, `--attacks-detection-only`, `--waf-fp`, `--waf-crs`, `--bench`, `--testssl`) and
runs only what is local and bounded by default (the compliance checks and lynis). A missing input is
shown as "not run" with the command that produces it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console(stderr=True)


def register(cli: typer.Typer) -> None:
    """Add the top-level `report` command to the lab CLI."""

    @cli.command()
    def report(
        out: Annotated[Path, typer.Option(help="output directory (index.html, report.json, report.junit.xml)")] = Path("report"),
        compliance_junit: Annotated[Path | None, typer.Option("--compliance-junit", help="use this pytest JUnit file instead of running tests/infra")] = None,
        no_compliance: Annotated[bool, typer.Option("--no-compliance", help="do not run the compliance checks")] = False,
        attacks: Annotated[Path | None, typer.Option(help="JSON of `lab attack --json`")] = None,
        run_attacks: Annotated[bool, typer.Option("--run-attacks", help="run `lab attack` when --attacks is not given")] = False,
        attacks_detection_only: Annotated[Path | None, typer.Option(
            "--attacks-detection-only", help="JSON of `lab attack --edge detection-only --json` (the defence demo)")] = None,
        waf_fp: Annotated[Path | None, typer.Option("--waf-fp", help="JSON of benchmarks/waf/falsepositives.py")] = None,
        waf_crs: Annotated[Path | None, typer.Option("--waf-crs", help="JSON of benchmarks/waf/crs_regression.py")] = None,
        waf_base_url: Annotated[str | None, typer.Option("--waf-base-url", help="run both WAF benchmarks against this edge")] = None,
        waf_ca_cert: Annotated[str | None, typer.Option("--waf-ca-cert", help="CA bundle for --waf-base-url")] = None,
        bench: Annotated[list[Path] | None, typer.Option(
            help="JSON of `lab bench --json` (a stepped run) or `lab bench --layers --json` (the layer table); repeatable")] = None,
        testssl: Annotated[Path | None, typer.Option(help="JSON of benchmarks/tls/testssl.py")] = None,
        lynis_report: Annotated[Path | None, typer.Option("--lynis-report", help="an existing lynis report file")] = None,
        no_lynis: Annotated[bool, typer.Option("--no-lynis", help="do not run lynis")] = False,
    ) -> None:
        """Build the report: compliance table, attack matrix, WAF, performance, TLS, lynis, identity."""
        from seclab.report.build import Options, build

        opts = Options(
            out=out, compliance_junit=compliance_junit, run_compliance=not no_compliance, attacks=attacks,
            run_attacks=run_attacks, attacks_detection_only=attacks_detection_only, waf_fp=waf_fp, waf_crs=waf_crs, waf_base_url=waf_base_url,
            waf_ca_cert=waf_ca_cert, bench=list(bench or []), testssl=testssl, lynis_report=lynis_report,
            run_lynis=not no_lynis,
        )
        with console.status("building the report (compliance checks, lynis)..."):
            data = build(opts)
        c = data["compliance"]
        if c.get("status") == "ok":
            t = c["tests"]
            console.print(f"compliance: {t['passed']} passed, {t['failed']} failed, {t['error']} errors, "
                          f"{t['pending']} pending (not yet provisioned)", highlight=False)
        p = data["performance"]
        if p.get("status") == "ok":
            console.print(f"performance: max users held {p['max_users']} (minimum {p['min_users']}); "
                          f"limited by {p['limited_by']['by']}: {p['limited_by']['detail']}", highlight=False, markup=False)
        ly = data["layers"]
        if ly.get("status") == "ok":
            for op in ("read", "write"):
                rows = ", ".join(f"{r['path']} {r['rps']:g} req/s" for r in ly[op])
                console.print(f"layers {op}: {rows}", highlight=False, markup=False, soft_wrap=True)
        for key in ("attacks", "defence_demo", "performance", "layers", "tls", "lynis", "identity"):
            if data[key].get("status") != "ok":
                console.print(f"{key}: not run ({data[key].get('reason')})", highlight=False)
        for key in ("falsepositives", "detection"):
            if data["waf"][key].get("status") != "ok":
                console.print(f"waf {key}: not run ({data['waf'][key].get('reason')})", highlight=False)
        console.print(f"written: {out / 'index.html'}, {out / 'report.json'}, {out / 'report.junit.xml'}", highlight=False)
