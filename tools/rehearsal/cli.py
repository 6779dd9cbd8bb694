"""Command line of `.ci/rehearse` (see docs/DEVELOPING.md, "Proving a first-try install")."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import image, network, rehearse, sandbox
from .common import HOME, RehearsalError, fmt_secs, require_root, say

USAGE_EPILOG = """\
examples:
  .ci/rehearse                          base, fresh sandbox, clone, ./lab up twice, ./lab test
  .ci/rehearse --smoke                  ... then the smoke check instead of the full tests
  .ci/rehearse --no-test --keep         stop after the two ups and keep the sandbox to look around
  .ci/rehearse sandbox create me --worktree /work/wt/me
  .ci/rehearse sandbox exec me -- ./lab up
  .ci/rehearse sandbox shell me
  .ci/rehearse sandbox destroy me
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=".ci/rehearse", epilog=USAGE_EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="First-try install rehearsal and isolated dev labs in pristine "
                                            f"Debian 12 roots (state under {HOME}).")
    sub = p.add_subparsers(dest="command")

    r = sub.add_parser("run", help="the rehearsal (the default command)")
    tests = r.add_mutually_exclusive_group()
    tests.add_argument("--smoke", dest="tests", action="store_const", const="smoke",
                       help="after the two ups: ./lab status, ./lab token alice, one chat message answered")
    tests.add_argument("--no-test", dest="tests", action="store_const", const="none",
                       help="stop after the two ups")
    r.set_defaults(tests="test")
    r.add_argument("--keep", action="store_true", help="keep the sandbox afterwards (sandbox shell NAME)")
    r.add_argument("--keep-logs", action="store_true", help="copy the lab's logs out even when it passes")
    r.add_argument("--logs", metavar="DIR", help=f"where logs go (default {HOME}/logs/<run>)")
    r.add_argument("--rebuild-base", action="store_true", help="build the base root again from scratch")
    r.add_argument("--repo", metavar="PATH", help="repository to clone (default: this one)")
    r.add_argument("--timeout-up", type=float, default=40, metavar="MIN", help="per ./lab up (default 40)")
    r.add_argument("--deadline", type=float, default=0, metavar="MIN",
                   help="end the whole run (failed, logs kept) by MIN minutes after its start")
    r.add_argument("--timeout-test", type=float, default=60, metavar="MIN", help="for the tests (default 60)")

    b = sub.add_parser("base", help="build or reuse the pristine base root; print its path")
    b.add_argument("--rebuild", action="store_true")

    s = sub.add_parser("sandbox", help="persistent isolated labs for development").add_subparsers(dest="action")
    c = s.add_parser("create", help="a new sandbox (own namespaces and subnet), started")
    c.add_argument("name")
    c.add_argument("--worktree", metavar="PATH", help="bind PATH read-write at the same path; commands start there")
    c.add_argument("--bind", action="append", default=[], metavar="SRC[:DST][:ro]", help="another bind mount")
    for action, text in (("start", "start a stopped sandbox (after a reboot, or stop)"),
                         ("stop", "kill every process of it, keep its files"),
                         ("shell", "an interactive shell inside")):
        s.add_parser(action, help=text).add_argument("name")
    e = s.add_parser("exec", help="run a command inside: sandbox exec NAME [--cwd DIR] -- CMD...")
    e.add_argument("name")
    e.add_argument("--cwd", metavar="DIR", help="working directory inside (default: the worktree, else /root)")
    e.add_argument("cmd", nargs=argparse.REMAINDER)
    d = s.add_parser("destroy", help="stop it and delete its files")
    d.add_argument("names", nargs="+")
    s.add_parser("list", help="every sandbox, its state, subnet and worktree")
    return p


def exec_command(rest: list[str]) -> list[str]:
    """The command after `sandbox exec NAME`: argparse keeps or drops the `--` depending on its version."""
    return rest[1:] if rest[:1] == ["--"] else rest


def cmd_sandbox(opts: argparse.Namespace) -> int:
    action = opts.action
    if action == "list":
        rows = sandbox.all_sandboxes()
        if not rows:
            print("no sandboxes")
        for sb in rows:
            state = f"running pid {sb.pid}" if sb.alive() else "stopped"
            print(f"{sb.name:<24} {state:<20} {sb.subnet():<16} {sb.mode:<8} {sb.worktree or '-'}")
        return 0
    require_root()
    if action == "create":
        base, _ = image.ensure_base()
        binds = [sandbox.Bind.parse(spec) for spec in opts.bind]
        sb = sandbox.create(opts.name, base, worktree=opts.worktree, binds=binds)
        host, inside, _ = network.addresses(sb.index)
        say(f"sandbox {sb.name} runs (PID {sb.pid}, {sb.mode}, {inside} via {host}); "
            f"next: .ci/rehearse sandbox exec {sb.name} -- ./lab up")
        return 0
    if action == "destroy":
        for name in opts.names:
            sandbox.destroy(name)
        return 0
    sb = sandbox.Sandbox.load(opts.name)
    if action == "start":
        sandbox.start(sb)
        say(f"sandbox {sb.name} started (PID {sb.pid}); its services are not: run ./lab up inside")
        return 0
    if action == "stop":
        sandbox.stop(sb)
        say(f"sandbox {sb.name} stopped")
        return 0
    if action == "shell":
        return sandbox.execute(sb, ["/bin/bash", "-l"])
    if action == "exec":
        cmd = exec_command(opts.cmd)
        if not cmd:
            raise RehearsalError("sandbox exec NAME -- CMD...: no command")
        return sandbox.execute(sb, cmd, cwd=opts.cwd)
    raise RehearsalError("sandbox: create, start, stop, exec, shell, destroy or list")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0].startswith("-") and args[0] not in ("-h", "--help"):
        args.insert(0, "run")
    opts = parser().parse_args(args)
    try:
        if opts.command == "run":
            return rehearse.rehearse(opts)
        if opts.command == "base":
            require_root()
            import time
            t0 = time.monotonic()
            base, built = image.ensure_base(rebuild=opts.rebuild)
            say(f"base {'built' if built else 'reused'} in {fmt_secs(time.monotonic() - t0)}: {base}")
            print(Path(base))
            return 0
        if opts.command == "sandbox":
            return cmd_sandbox(opts)
    except RehearsalError as exc:
        print(f"rehearse: error: {exc}", file=sys.stderr)
        return 2
    parser().print_help()
    return 2
