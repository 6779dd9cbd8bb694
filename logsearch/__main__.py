"""`python -m logsearch apply|keeper`: what the logsearch Ansible role runs on the lab host.

apply   put the index template and ingest pipelines (prints {"changed": bool, "written": [...]})
keeper  retention and shipping metrics, every --interval seconds (or --once)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import labdef

from . import keeper, resources
from .client import GatewaySettings, client


def read_lab(path: Path) -> labdef.LabDefinition:
    """lab.json is labdef.as_vars(lab): {"lab": {...}} (the same reading as `python -m pki`)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return labdef.LabDefinition.model_validate(data.get("lab", data))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m logsearch")
    ap.add_argument("command", choices=["apply", "keeper"])
    ap.add_argument("--lab", type=Path, required=True, help="rendered lab definition (lab.json)")
    ap.add_argument("--prefix", default="seclab-logs")
    ap.add_argument("--stats-file", type=Path)
    ap.add_argument("--action", default="seclab_engine", help="the shipper's action name (rsyslog)")
    ap.add_argument("--textfile", type=Path)
    ap.add_argument("--interval", type=float, default=30.0)
    ap.add_argument("--once", action="store_true")
    ap.add_argument("--gateway-url", help="the gateway's URL (default: loopback ports.logsearch; containers name it)")
    args = ap.parse_args(argv)
    lab = read_lab(args.lab)
    settings = GatewaySettings.from_lab(lab).model_copy(update={"index_prefix": args.prefix})
    if args.gateway_url:
        settings = settings.model_copy(update={"url": args.gateway_url})

    if args.command == "apply":

        async def _apply() -> list[str]:
            async with client(settings) as http:
                return await resources.apply(http, args.prefix)

        written = asyncio.run(_apply())
        print(json.dumps({"changed": bool(written), "written": written}))
        return 0

    if args.stats_file is None:
        ap.error("keeper needs --stats-file")
    asyncio.run(
        keeper.run(
            lambda: client(settings),
            args.prefix,
            lab.logging.retention_days,
            args.stats_file,
            args.action,
            args.textfile,
            args.interval,
            once=args.once,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
