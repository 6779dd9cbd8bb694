"""`lab attack`: run the black-box attack suites against the lab and say which layer stopped each attack.

`--edge detection-only` is the attack/defence demo: the WAF is re-rendered in DetectionOnly, nginx is
reloaded, the suites run (so the report shows what the inner layers still stop), and blocking mode is
restored in a `finally`, whatever happens. The switch lives in one function, `edge_waf_mode`.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.table import Table

from attacks.edge_waf import (
    NGINX_CONF,
    deployed_audit_log,
    deployed_setting,
    engine_line,
    reload_edge,
    waf_conf_dir,
)
from labdef.errors import LabError

console = Console(stderr=True)
out = Console()

@contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """SIGTERM/SIGHUP raise SystemExit in the body, so its `finally` runs (Python's default just dies).

    Why: the edge must not be left in DetectionOnly because `timeout` or a closed terminal stopped the
    demo (fail securely, OWASP ASVS 4.0.3 V1.4.1 / V7.4.1). Ctrl-C is already a KeyboardInterrupt.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    old = {sig: signal.signal(sig, _exit) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


@contextmanager
def _uninterrupted() -> Iterator[None]:
    """No SIGINT/SIGTERM/SIGHUP while blocking mode is restored: a second Ctrl-C must not cut it short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    old = {sig: signal.signal(sig, signal.SIG_IGN) for sig in sigs}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


@contextmanager
def edge_waf_mode(lab: Any, mode: str, conf_dir: Path | None = None, nginx_conf: Path = NGINX_CONF) -> Iterator[None]:
    """Run the body with the edge's WAF in `mode`; afterwards ALWAYS back to blocking (try/finally).

    The deployed files are snapshotted byte for byte and restored (so Ansible sees no drift); if the
    snapshot itself was not blocking, blocking is rendered. nginx is reloaded both ways.
    """
    from waf_rules import render

    if mode == "blocking":
        yield
        return
    d = conf_dir or waf_conf_dir(lab)
    if not (d / "main.conf").exists():
        raise LabError(f"no deployed WAF configuration in {d}: is the edge up (./lab up)?")
    files = [d / dst for dst in render.TEMPLATES.values()] + [d / s for s in render.NGINX_SNIPPETS]
    snapshot = {p: p.read_bytes() for p in files if p.exists()}
    overrides: dict[str, Any] = {"tmp_dir": deployed_setting(d, "SecTmpDir") or str(Path(lab.paths.data) / "waf")}
    audit_log = str(deployed_audit_log(lab))
    try:
        with _terminate_as_exit():
            render.render(lab, d, audit_log, mode_override=mode, **overrides)  # type: ignore[arg-type]
            reload_edge(nginx_conf)
            console.print(f"edge WAF switched to {mode} ({engine_line(d)})", highlight=False)
            yield
    finally:
        with _uninterrupted():
            for path, data in snapshot.items():
                path.write_bytes(data)
            if engine_line(d) != "SecRuleEngine On":
                render.render(lab, d, audit_log, mode_override="blocking", **overrides)
            reload_edge(nginx_conf)
        console.print(f"edge WAF restored to blocking ({engine_line(d)})", highlight=False)


def _same_origin(a: str, b: str) -> bool:
    ua, ub = urlsplit(a), urlsplit(b)
    port = {"https": 443, "http": 80}
    return (ua.scheme, ua.hostname, ua.port or port.get(ua.scheme)) == (ub.scheme, ub.hostname, ub.port or port.get(ub.scheme))


def build_target(
    lab: Any, base_url: str | None, edge_mode: str, via_edge: bool | None = None, ca_cert: Path | None = None
) -> Any:
    """The target from `lab status --json` (edge url + CA), or `--base-url` (then the app, unless it is the
    edge's origin or `via_edge` says it is an edge, e.g. a throw-away instance rendered from edge/)."""
    from attacks.runner import Target
    from labdef import status, tokens

    st_edge = status.edge_url(lab)
    base = (base_url or st_edge).rstrip("/")
    through_edge = _same_origin(base, st_edge) if via_edge is None else via_edge
    ca = ca_cert or status.ca_cert_path(lab)
    verify: str | bool = str(ca) if base.startswith("https") and ca.exists() else base.startswith("https")
    realm = lab.identity.realm
    token_url = (f"{base}/realms/{realm}/protocol/openid-connect/token" if through_edge
                 else tokens.token_endpoint(lab))
    return Target(base_url=base, verify=verify, through_edge=through_edge, token_url=token_url, realm=realm,
                  client_id=lab.identity.cli_client_id, edge_mode=edge_mode)


def print_table(report: Any) -> None:
    table = Table(title="seclab attack matrix")
    for col in ("id", "refs", "expected", "outcome", "layer"):
        table.add_column(col, overflow="fold")
    style = {"stopped": "green", "succeeded": "red", "error": "yellow"}
    for r in report.results:
        exp = f"{r.expected.layer}" if r.expected else ""
        layer = r.layer or "-"
        if r.outcome == "stopped" and r.expected and r.layer != r.expected.layer:
            layer += " (!)"
        refs = r.refs[0] + (f" +{len(r.refs) - 1}" if len(r.refs) > 1 else "")
        table.add_row(r.id, refs, exp, f"[{style[r.outcome]}]{r.outcome}[/]", layer)
    out.print(table)
    counts = {k: sum(1 for r in report.results if r.outcome == k) for k in ("stopped", "succeeded", "error")}
    out.print(f"stopped {counts['stopped']}, succeeded {counts['succeeded']}, error {counts['error']}"
              f"   ((!) = stopped by another layer than expected)")


def register(cli: typer.Typer) -> None:
    """Add the top-level `attack` command to the lab CLI."""

    @cli.command("attack")
    def attack(
        suite: Annotated[list[str] | None, typer.Option("--suite", help="suite to run (repeatable; default: all)")] = None,
        exclude: Annotated[list[str] | None, typer.Option("--exclude", help="suite to leave out (repeatable)")] = None,
        edge: Annotated[str, typer.Option("--edge", help="blocking | detection-only (the defence demo)")] = "blocking",
        json_file: Annotated[Path | None, typer.Option("--json", help="write {\"results\": [...]} here")] = None,
        base_url: Annotated[str | None, typer.Option("--base-url", help="target root URL (default: the edge)")] = None,
        logs_dir: Annotated[Path | None, typer.Option("--logs-dir", help="lab logs (default: lab.paths.logs)")] = None,
        bruteforce_user: Annotated[str, typer.Option(help="victim of the lockout case (is locked afterwards)")] = "carol",
        via_edge: Annotated[bool | None, typer.Option(
            "--via-edge/--direct", help="the --base-url is an edge / the app (default: edge iff it is the lab's edge URL)",
        )] = None,
        ca_cert: Annotated[Path | None, typer.Option(help="CA bundle for an https target (default: the lab CA)")] = None,
        waf_dir: Annotated[Path | None, typer.Option(help="deployed WAF config (default: <paths.etc>/waf)")] = None,
        nginx_conf: Annotated[Path, typer.Option(help="the edge's nginx.conf (for -t and -s reload)")] = NGINX_CONF,
    ) -> None:
        """Run the black-box attack suites; exit 1 if any attack succeeded or any case proved nothing."""
        import labdef
        from attacks.evidence import Evidence, LogPaths
        from attacks.runner import SUITES, Context, load_suites, run_cases, write_report
        from labdef import tokens

        if edge not in ("blocking", "detection-only"):
            raise LabError(f"--edge must be blocking or detection-only, not {edge!r}")
        lab = labdef.load()
        target = build_target(lab, base_url, edge, via_edge, ca_cert)
        if edge == "detection-only" and not target.through_edge:
            raise LabError("--edge detection-only needs the edge as the target (drop --base-url)")
        names = [s for s in (suite or list(SUITES)) if s not in set(exclude or [])]
        try:
            cases = load_suites(names)
        except ValueError as exc:
            raise LabError(str(exc)) from None
        paths = LogPaths.from_logs_dir(logs_dir or lab.paths.logs)

        def check_target() -> None:
            import httpx

            try:
                httpx.get(target.base_url + "/healthz", verify=target.verify, timeout=5.0)
            except httpx.HTTPError as exc:
                hint = "" if base_url else f" (the edge is not up? try --base-url http://127.0.0.1:{lab.ports.app})"
                raise LabError(f"target {target.base_url} unreachable: {type(exc).__name__}{hint}") from None

        check_target()
        console.print(f"target {target.base_url} ({'edge' if target.through_edge else 'app directly, no edge'}), "
                      f"{len(cases)} cases, WAF {edge}", highlight=False)

        async def main() -> Any:
            ctx = Context(target=target, lab=lab, evidence=Evidence(paths),
                          token_for=lambda u: tokens.get_access_token(lab, u),
                          options={"bruteforce_user": bruteforce_user, "rate_user": bruteforce_user})
            try:
                return await run_cases(ctx, cases, on_result=lambda r: console.print(
                    f"  {r.id:<22} {r.outcome:<9} {r.layer or '-'}", highlight=False))
            finally:
                await ctx.aclose()

        with edge_waf_mode(lab, edge, conf_dir=waf_dir, nginx_conf=nginx_conf):
            report = asyncio.run(main())
        print_table(report)
        if json_file is not None:
            write_report(report, json_file)
            console.print(f"wrote {json_file}", highlight=False)
        if report.failed():
            raise typer.Exit(1)
