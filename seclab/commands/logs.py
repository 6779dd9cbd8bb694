"""`lab logs`: the lab's centralized logs (issue 17), searched in the log search engine.

    ./lab logs --request-id ID            every service's events of one request, oldest first
    ./lab logs --query 'status:403' --since 15m
    ./lab logs --request-id ID --json     a JSON list of the ECS events as stored (each with event.dataset)

It talks to the mTLS gateway with the lab's `log-reader` client certificate (root-only key under
paths.pki): run it as root on the lab host, as every `lab` command that reads lab secrets.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Annotated, Any

import httpx
import typer
from pydantic import ValidationError

import labdef
from labdef.errors import LabError


def register(cli: typer.Typer) -> None:
    """Add the top-level `logs` command to the lab CLI."""

    @cli.command("logs")
    def logs(
        request_id: Annotated[str | None, typer.Option("--request-id", help="the X-Request-ID of one request")] = None,
        query: Annotated[str | None, typer.Option("--query", help="simple query string, e.g. 'ModSecurity 949110'")] = None,
        since: Annotated[str | None, typer.Option("--since", help="only events this recent: 30s, 15m, 2h, 7d")] = None,
        limit: Annotated[int, typer.Option("--limit", min=1, max=10000)] = 1000,
        as_json: Annotated[bool, typer.Option("--json", help="print a JSON list of the events as stored")] = False,
    ) -> None:
        """Search the lab's centralized logs: one request across every service, or a query."""
        from logsearch.client import GatewaySettings, client
        from logsearch.search import LogQuery, parse_since, search, summary

        if request_id is None and query is None:
            raise LabError("give --request-id ID or --query TEXT (with --since to narrow it)")
        lab = labdef.load()
        if lab.logging.engine == "none":
            raise LabError("lab.yml logging.engine is none: there is no log search engine")
        try:
            q = LogQuery(
                request_id=request_id,
                query=query,
                since=parse_since(since) if since else None,
                limit=limit,
            )
        except ValidationError as exc:
            raise LabError("; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())) from None
        except ValueError as exc:
            raise LabError(str(exc)) from None
        settings = GatewaySettings.from_lab(lab)

        async def _run() -> list[dict[str, Any]]:
            async with client(settings) as http:
                return await search(http, settings.index_prefix, q)

        try:
            events = asyncio.run(_run())
        except (OSError, ssl.SSLError) as exc:
            raise LabError(f"cannot reach the log search gateway {settings.url}: {exc} (run as root on the lab host)") from None
        except httpx.HTTPError as exc:
            raise LabError(f"log search failed: {exc}") from None
        if as_json:
            typer.echo(json.dumps(events, indent=2))
            return
        for event in events:
            typer.echo(summary(event))
        typer.echo(f"{len(events)} event(s)", err=True)
