"""The `lab` command: one entry point for provisioning, status, tokens, tests, attacks and reports.

Errors are one line (`lab: error: ...`), never a traceback, unless `--debug` is given: the
users are students in a terminal, and a stack trace hides the one sentence they need.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

import labdef
from labdef.errors import LabError

ROOT = Path(__file__).resolve().parent.parent
console = Console(stderr=True)
out = Console()

cli = typer.Typer(
    name="lab",
    help="seclab: build a hardened LLM chat lab, attack it, measure it, report on it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_state: dict[str, Any] = {"debug": False, "lab_file": None}


def _mount_subapps() -> None:
    """Sub-apps live in seclab/commands/<area>.py; a missing one is simply not offered."""
    for name, module in [
        ("pki", "seclab.commands.pki"),
        ("dlq", "seclab.commands.dlq"),
        ("model", "seclab.commands.model"),
        ("audit", "seclab.commands.audit"),
        ("waf", "seclab.commands.waf"),
        ("backup", "seclab.commands.backup"),
        ("tenant", "seclab.commands.tenant"),
    ]:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                continue
            raise
        cli.add_typer(mod.app, name=name)
        if name == "backup":  # `lab restore` lives beside `lab backup` (one module: pgBackRest)
            cli.add_typer(mod.restore_app, name="restore")
    # Top-level verbs that live in their own module (attack, report, password, logs): each exposes register(cli).
    for module in ("seclab.commands.attack", "seclab.commands.report", "seclab.commands.password", "seclab.commands.logs"):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                continue
            raise
        mod.register(cli)


@cli.callback()
def _main(
    lab_file: Annotated[
        Path | None, typer.Option("--lab-file", "-f", help="lab definition (default: ./lab.yml or $SECLAB_LAB_FILE)")
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False,
) -> None:
    _state["debug"] = debug
    if lab_file is not None:
        os.environ["SECLAB_LAB_FILE"] = str(lab_file.resolve())


def load_lab() -> labdef.LabDefinition:
    return labdef.load()


@cli.command()
def validate() -> None:
    """Validate lab.yml and print the definition with every default filled in."""
    lab = load_lab()
    out.print_json(json.dumps(labdef.as_vars(lab)))


@cli.command()
def up(
    engine: Annotated[str, typer.Option(help="ansible (this host, default) or pulumi (Docker host)")] = "ansible",
    inventory: Annotated[Path | None, typer.Option(help="Ansible inventory (default: localhost)")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="stream every Ansible task result")] = False,
) -> None:
    """Provision and start the lab (idempotent: run it again to converge)."""
    lab = load_lab()
    if engine == "pulumi":
        from seclab.engines import pulumi_engine

        pulumi_engine.preflight()
        pulumi_engine.up(lab)
        return
    if engine != "ansible":
        raise LabError(f"unknown engine {engine!r}: use ansible or pulumi")
    from seclab.engines import ansible_engine

    if not lab.hardening.os:
        console.print("[bold red]WARNING[/]: OS hardening is OFF (lab.yml hardening.os: false): this host keeps the "
                      "image's kernel parameters, PAM and setuid files; `./lab verify` fails the Linux baseline.",
                      highlight=False)
    with console.status("provisioning with Ansible...") as status:

        def on_event(event: str) -> None:
            status.update(f"[bold]ansible[/]: {event}")
            if verbose:
                console.print(f"  {event}")

        result = ansible_engine.up(lab, inventory=inventory, verbose=verbose, on_event=on_event)
    out.print(result.summary(), soft_wrap=True, highlight=False)
    if result.ok and result.changed_tasks:
        shown = ", ".join(result.changed_tasks[:12]) + (" ..." if len(result.changed_tasks) > 12 else "")
        console.print(f"changed: {shown}", soft_wrap=True, highlight=False, markup=False)
    if not result.ok:
        raise LabError(result.error or "provisioning failed")
    _print_status(lab, as_json=False)


@cli.command()
def down(
    purge: Annotated[bool, typer.Option("--purge", help="also delete data: databases, Redis data, secrets, certificates")] = False,
    inventory: Annotated[Path | None, typer.Option(help="Ansible inventory (default: localhost)")] = None,
) -> None:
    """Stop every lab process; --purge also removes the lab's data and secrets."""
    lab = load_lab()
    from seclab.engines import ansible_engine

    with console.status("stopping the lab..."):
        result = ansible_engine.down(lab, purge=purge, inventory=inventory)
    out.print(result.summary(), soft_wrap=True, highlight=False)
    if not result.ok:
        raise LabError(result.error or "stopping failed")


def _print_table(st: dict[str, Any], console: Console) -> None:
    table = Table(title=f"lab {st['lab']}", show_lines=False)
    table.add_column("service")
    table.add_column("state")
    table.add_column("address")
    for name, s in st["services"].items():
        state = "[green]up[/]" if s["up"] else "[red]down[/]"
        table.add_row(name, state, s.get("address", ""))
    console.print(table)
    console.print(f"identity provider: {st['idp']['label']}  issuer {st['idp']['issuer']}")
    console.print(f"API: {st['api']['url']}   edge: {st['edge']['url']}   CA: {st['edge']['ca_cert']}")
    console.print(f"realm export: {st['realm_export']}")
    primary = st.get("redis_primary")
    console.print(f"Redis primary (Sentinel): {primary or 'unknown (sentinels down, or not root)'}")


def _print_status(lab: labdef.LabDefinition, as_json: bool) -> bool:
    from labdef import status as status_mod

    st = status_mod.collect(lab)
    if as_json:
        out.print_json(json.dumps(st))
    else:
        _print_table(st, out)
    return all(s["up"] for s in st["services"].values())


@cli.command()
def status(json_: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False) -> None:
    """What runs, where, and which identity provider is in use."""
    lab = load_lab()
    all_up = _print_status(lab, as_json=json_)
    if not all_up:
        raise typer.Exit(3)


@cli.command()
def token(
    user: Annotated[str, typer.Argument(help="a user of lab.yml, e.g. alice")],
) -> None:
    """Get an access token for USER from the lab's identity provider (printed on the last line)."""
    lab = load_lab()
    from labdef import tokens

    console.print(f"requesting a token for {user} from {tokens.issuer(lab)}", highlight=False)
    out.print(tokens.get_access_token(lab, user), soft_wrap=True, highlight=False)


COVERAGE_FLOOR = 80
"""The seeds' minimum: `./lab test` fails when line+branch coverage of the project's code is below it."""
COVERAGE_DIR = ROOT / "reports" / "coverage"


@cli.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def test(
    args: Annotated[list[str] | None, typer.Argument(help="extra pytest arguments, e.g. -k tenancy")] = None,
    unit_only: Annotated[bool, typer.Option("--unit", help="only the tests that need no services")] = False,
    no_cov: Annotated[bool, typer.Option("--no-cov", help="skip the coverage measurement and its 80% floor")] = False,
) -> None:
    """Run every test: unit, integration and host compliance against the provisioned lab, WAF, identity,
    browser, Pulumi mocks; measure line and branch coverage (reports/coverage/) and fail under 80%."""
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "pytest"]
    if unit_only:
        cmd += ["-m", "not integration and not infra"]
    else:
        # Nothing skips for a missing service or tool under `./lab test`: `./lab up` provides them all
        # (tests/conftest.py need()). The host compliance suite (tests/infra) runs here too.
        env["SECLAB_REQUIRE_LAB"] = "1"
    if not no_cov and not args:
        # Whole-suite runs only: a -k selection would measure a fraction and fail the floor for nothing.
        COVERAGE_DIR.mkdir(parents=True, exist_ok=True)
        cmd += ["--cov", "--cov-branch", "--cov-report=term:skip-covered",
                f"--cov-report=html:{COVERAGE_DIR / 'html'}", f"--cov-report=xml:{COVERAGE_DIR / 'coverage.xml'}",
                f"--cov-fail-under={COVERAGE_FLOOR}"]
    cmd += list(args or [])
    console.print("running: " + " ".join(cmd[2:]), highlight=False)
    rc = subprocess.call(cmd, cwd=ROOT, env=env)
    raise typer.Exit(rc)


@cli.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def verify(
    args: Annotated[list[str] | None, typer.Argument(help="extra pytest arguments")] = None,
) -> None:
    """Compliance checks of the provisioned host (pytest-testinfra, local backend)."""
    cmd = [sys.executable, "-m", "pytest", "tests/infra", "-m", "infra"] + list(args or [])
    raise typer.Exit(subprocess.call(cmd, cwd=ROOT))


@cli.command()
def bench(
    users: Annotated[str | None, typer.Option(
        help="user counts to step through, e.g. 5,10,20 (default: lab.yml performance.user_steps)")] = None,
    duration: Annotated[int | None, typer.Option(
        help="measured seconds per step (after the ramp-up; default 60), or per row with --layers (default 20)")] = None,
    json_file: Annotated[Path | None, typer.Option("--json", help="write the summary here (for `lab report --bench`)")] = None,
    spawn_rate: Annotated[float, typer.Option(help="users started (logged in) per second")] = 0.4,
    think: Annotated[str, typer.Option(help="seconds a user waits between actions, MIN,MAX")] = "5,15",
    keep_going: Annotated[bool, typer.Option("--keep-going", help="run every step, even after one missed the target")] = False,
    layers: Annotated[bool, typer.Option("--layers", help="what each layer costs: app direct, edge TLS, WAF PL1, PL2")] = False,
    concurrency: Annotated[int, typer.Option(min=1, help="--layers: requests in flight (closed loop)")] = 8,
    warmup: Annotated[float, typer.Option(min=0, help="--layers: seconds sent before each measured window")] = 3.0,
    capacity: Annotated[bool, typer.Option("--capacity", help="quotas raised for the run: users stepped up until "
                                           "p95 passes the target or errors appear; names what saturated")] = False,
    profile: Annotated[bool, typer.Option("--profile", help="--capacity: py-spy samples the app and the worker in "
                                          "each step; raw profiles next to --json, top five in `lab report --bench`")] = False,
) -> None:
    """Locust load steps (headless): log in, list, post, read back; reports the maximum users held.

    Exit 1 when the lab holds fewer users than lab.yml performance.min_users. With --layers: the
    layer table instead (benchmarks/layers.py): read and write along each cumulative path, the lab's
    quotas and WAF switched for the run only, under the provisioning lock, and restored afterwards.
    """
    lab = load_lab()
    if layers and capacity:
        raise LabError("--layers and --capacity are separate runs: give one")
    if profile and not (capacity and json_file):
        raise LabError("--profile goes with --capacity --json FILE (the profiles are saved next to FILE)")
    if layers:
        _bench_layers(lab, concurrency=concurrency, warmup_s=warmup, duration_s=duration or 20, json_file=json_file)
        return
    from benchmarks import runner

    try:
        think_s = tuple(float(x) for x in think.split(","))
        if len(think_s) != 2 or not 0 <= think_s[0] <= think_s[1]:
            raise ValueError
    except ValueError:
        raise LabError(f"--think must be MIN,MAX seconds, not {think!r}") from None
    if capacity:
        _bench_capacity(lab, users=users, duration_s=duration or 30, think_s=think_s, json_file=json_file,  # type: ignore[arg-type]
                        profile=profile)
        return
    duration = duration or 60
    steps = runner.parse_users(users) if users else list(lab.performance.user_steps)

    def show(step: dict[str, Any]) -> None:
        v = step["verdict"]
        console.print(f"  {step['users']:>4} users: {step['requests']} requests, {step['rps']} rps, p50/p95/p99 "
                      f"{step['p50_ms']:g}/{step['p95_ms']:g}/{step['p99_ms']:g} ms, {step['errors']} errors: "
                      f"{'met' if v['met'] else 'MISSED'} ({v['detail']})", highlight=False, markup=False)

    console.print(f"load steps {steps}: ramp at {spawn_rate}/s, then {duration}s measured each", highlight=False)
    summary = runner.run(lab, steps, duration, spawn_rate=spawn_rate, think_s=think_s,  # type: ignore[arg-type]
                         keep_going=keep_going, on_step=show)
    if json_file:
        json_file.write_text(json.dumps(summary, indent=2) + "\n")
    out.print_json(json.dumps({k: v for k, v in summary.items() if k != "steps"}))
    lim = summary["limited_by"]
    console.print(f"max users held: {summary['max_users']} (lab minimum {summary['min_users']}); "
                  f"limited by {lim['by']}: {lim['detail']}", highlight=False, markup=False)
    if not summary["meets_min_users"]:
        raise typer.Exit(1)


def _bench_layers(lab: labdef.LabDefinition, *, concurrency: int, warmup_s: float, duration_s: int,
                  json_file: Path | None) -> None:
    from benchmarks import layers as layers_mod
    from seclab.commands import bench_layers

    def show(op: str, m: layers_mod.Measured) -> None:
        console.print(f"  {op:<5} {m.path:<28} {m.ok / m.seconds:8.1f} req/s, {m.errors} not as expected "
                      f"{m.statuses}", highlight=False, markup=False)

    console.print(f"layers: {concurrency} in flight, {warmup_s:g} s warm-up + {duration_s} s measured per row; "
                  f"load average {layers_mod.loadavg()}", highlight=False)
    if json_file:
        json_file.parent.mkdir(parents=True, exist_ok=True)  # checked before the run, not after minutes of it
    data = bench_layers.run(lab, concurrency=concurrency, warmup_s=warmup_s, duration_s=duration_s, on_row=show)
    if json_file:
        json_file.write_text(json.dumps(data, indent=2) + "\n")
    for line in layers_mod.table_lines(data):
        out.print(line, highlight=False, markup=False, soft_wrap=True)
    for path, g in data["guard"].items():
        out.print(f"guard ({path}): {g['messages']} messages, mean {g['mean_ms']} ms, share of the write "
                  f"{g['share_of_write']}", highlight=False, markup=False)
    r = data["run"]
    console.print(f"load average before {r['loadavg_before']}, after {r['loadavg_after']}; {r['quotas']}",
                  highlight=False, markup=False, soft_wrap=True)


def _bench_capacity(lab: labdef.LabDefinition, *, users: str | None, duration_s: int, think_s: tuple[float, float],
                    json_file: Path | None, profile: bool = False) -> None:
    from benchmarks import runner
    from seclab.commands import bench_capacity

    steps = runner.parse_users(users) if users else list(bench_capacity.DEFAULT_STEPS)

    def show(step: dict[str, Any]) -> None:
        s = step["saturated"]
        console.print(f"  {step['users']:>4} users: {step['rps']} rps, p95 {step['p95_ms']:g} ms, {step['errors']} errors: "
                      f"{'met' if step['meets_target'] else 'MISSED'}; host CPU {step['host_busy']}, busiest "
                      f"{[(p['group'], p['cores']) for p in step['processes'][:3]]}; {s['resource']}",
                      highlight=False, markup=False)

    console.print(f"capacity steps {steps} (quotas raised for the run only), {duration_s} s measured each", highlight=False)
    if json_file:
        json_file.parent.mkdir(parents=True, exist_ok=True)
    data = bench_capacity.run(lab, steps, duration_s, think_s=think_s, on_step=show,
                              profile_to=json_file.with_suffix("") if profile and json_file else None)
    if json_file:
        json_file.write_text(json.dumps(data, indent=2) + "\n")
    for group, prof in (data.get("profiles") or {}).items():
        if group == "users":
            continue
        if "error" in prof:
            out.print(f"profile of the {group}: NONE: {prof['error']}", highlight=False, markup=False, soft_wrap=True)
            continue
        top = ", ".join(f"{t['function']} {100 * t['share']:.1f} %" for t in prof["top"])
        out.print(f"profile of the {group} ({prof['samples']} samples, {prof['file']}): self-time top {len(prof['top'])}: {top}",
                  highlight=False, markup=False, soft_wrap=True)
    c, s = data["capacity"], data["saturated"]
    out.print(f"capacity: {c['users']} users, {c['rps']} req/s at p95 {c['p95_ms']} ms (target {data['p95_target_ms']} ms); "
              f"first saturated: {s['resource']}: {s['detail']}; {data['quotas']}", highlight=False, markup=False,
              soft_wrap=True)


def main() -> None:
    _mount_subapps()
    try:
        cli(prog_name="lab")
    except LabError as exc:
        if _state["debug"]:
            raise
        console.print(f"lab: error: {exc}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(1)
    except labdef.LabDefinitionError as exc:
        console.print(f"lab: error: {exc}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("lab: interrupted")
        sys.exit(130)
    except Exception as exc:
        if _state["debug"]:
            raise
        console.print(f"lab: error: {type(exc).__name__}: {exc} (run with --debug for details)", markup=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
