"""`lab waf fp|crs`: the WAF benchmarks against the lab's running edge, with stock CRS locally beside it.

Why on the CLI: the report's WAF section reads these JSON files (`lab report --waf-fp/--waf-crs`), and
the figures that matter are the deployed edge's, so the defaults are the edge of `lab status` and its
CA. The runners themselves are benchmarks/waf/falsepositives.py and crs_regression.py (same options).
A level other than the deployed one switches the edge's WAF for that run under the provisioning lock
and restores it afterwards (benchmarks/waf/live.py `deployed_paranoia`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

console = Console(stderr=True)
app = typer.Typer(help="WAF benchmarks: false positives on chat prompts, CRS regression detection.",
                  no_args_is_help=True)

Levels = Annotated[str | None, typer.Option(help="paranoia levels, e.g. 1,2 (default: the deployed one)")]
Json = Annotated[Path | None, typer.Option("--json", help="write the results here (input of lab report)")]
Local = Annotated[bool, typer.Option("--local", help="local instances only (stock and tuned), not the edge")]
NoStock = Annotated[bool, typer.Option("--no-stock", help="no local stock CRS next to the edge")]
Rate = Annotated[float | None, typer.Option(help="requests/s to the edge (default: 80% of its per-address limit)")]


def _namespace(local: bool, levels: str | None, no_stock: bool, rate: float | None, json_file: Path | None,
               **extra: Any) -> argparse.Namespace:
    from labdef import load, status

    lab = load()
    return argparse.Namespace(
        base_url=None if local else status.edge_url(lab), ca_cert=None if local else str(status.ca_cert_path(lab)),
        start_local=local,
        levels=levels, configs="stock,tuned", no_stock=no_stock, rate=rate, lab_file=None, concurrency=4,
        json_out=str(json_file) if json_file else None, **extra,
    )


@app.command()
def fp(levels: Levels = None, json_file: Json = None, local: Local = False, no_stock: NoStock = False,
       rate: Rate = None, user: Annotated[str, typer.Option(help="lab user whose real token is sent")] = "alice",
       ) -> None:
    """False positives: every chat-legit prompt as a message POST; block rate per config and level."""
    from benchmarks.waf import common, falsepositives

    args = _namespace(local, levels, no_stock, rate, json_file, corpus=str(common.CHAT_LEGIT), user=user)
    with console.status("sending the chat-legit prompts..."):
        data = falsepositives.run(args)
    falsepositives.print_results(data)
    common.write_json(args.json_out, data)


@app.command()
def crs(levels: Levels = None, json_file: Json = None, local: Local = False, no_stock: NoStock = False,
        rate: Rate = None, sample: Annotated[int, typer.Option(help="a seeded sample of N stages (0: all)")] = 0,
        seed: Annotated[int, typer.Option(help="seed of --sample")] = 3304) -> None:
    """Detection: the CRS 3.3 regression stages; blocked stages per config, level and rule file."""
    from benchmarks.waf import common, crs_regression

    args = _namespace(local, levels, no_stock, rate, json_file, tests=str(common.CRS_REGRESSION), mount=None,
                      sample=sample, seed=seed)
    with console.status("sending the CRS regression stages..."):
        data = crs_regression.run(args)
    crs_regression.print_results(data)
    common.write_json(args.json_out, data)
