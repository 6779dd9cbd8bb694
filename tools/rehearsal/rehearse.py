"""The rehearsal: a newcomer's first try, on a pristine root, timed phase by phase.

base (build or reuse) -> copy (a fresh sandbox, and a `git clone` of the repository's HEAD inside it)
-> `./lab up` -> a second `./lab up` that must report `changed=0 failed=0` -> `./lab test` (or the
smoke check, or nothing). Any failure stops the run, copies the sandbox's logs out (lab logs,
supervisord logs, Ansible's JSON-lines logs, the tooling's install.log) and exits non-zero; the
sandbox is destroyed unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from . import image, sandbox
from .common import HERE, HOME, REPO, Clock, RehearsalError, fmt_secs, require_root, run, say

RECAP_RE = re.compile(r"ansible \S+: (done|FAILED) in \d+s \((.*)\)")
HOST_RE = re.compile(r"changed=(\d+) failed=(\d+)")
PYTEST_LAST_RE = re.compile(r"^=+ .*\b(passed|failed|errors?|no tests ran)\b.* in [\d.]+s.*=+$")
CLONE_DIR = "/root/seclab"
ANSIBLE_STATE = "/root/.local/state/seclab"  # where `./lab up` keeps Ansible's JSON-lines log
HEARTBEAT_S = 60
DEADLINE_MARGIN_MIN = 3  # kept back from --deadline for log copying and teardown


@dataclass
class StepResult:
    rc: int
    timed_out: bool
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=60))
    recap: str | None = None  # the lab's "ansible site.yml: done in ..." line
    pytest_last: str | None = None


def parse_recap(line: str) -> tuple[int, int] | None:
    """(changed, failed) summed over hosts from `./lab up`'s summary line, else None."""
    m = RECAP_RE.search(line)
    if not m:
        return None
    pairs = [(int(c), int(f)) for c, f in HOST_RE.findall(m.group(2))]
    if not pairs:
        return None
    return sum(c for c, _ in pairs), sum(f for _, f in pairs)


def failure_lines(tail: deque[str]) -> list[str]:
    """The lines of a failed `./lab up` that name the failing task (the lab prints one `failed: task ...`)."""
    picked = [ln for ln in tail if re.search(r"failed: task|unreachable: task|^lab: |Error|FAILED", ln)]
    return picked[-6:] or list(tail)[-6:]


def step(sb: sandbox.Sandbox, argv: list[str], log: Path, timeout_s: float, cwd: str,
         show_task: bool = False) -> StepResult:
    """Run argv in the sandbox, streaming its output to the console and to `log`; a silent minute
    prints a heartbeat (with show_task, the Ansible task `./lab up` is at)."""
    proc = subprocess.Popen(sandbox.nsenter(sb, argv, cwd), env=sandbox.sandbox_env(os.environ),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    res = StepResult(rc=-1, timed_out=False)

    def on_timeout() -> None:
        res.timed_out = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(timeout_s, on_timeout)
    timer.start()
    last_output = [time.monotonic()]
    started = time.monotonic()
    done = threading.Event()

    def heartbeat() -> None:
        # `./lab up` shows progress on a terminal only; in CI's log, say every minute that it still
        # runs and which Ansible task it is at, from the lab's JSON-lines log inside the sandbox.
        while not done.wait(HEARTBEAT_S):
            if time.monotonic() - last_output[0] >= HEARTBEAT_S:
                now = current_task(sb) if show_task else None
                say(f"... {fmt_secs(time.monotonic() - started)}" + (f", at: {now}" if now else ""))

    threading.Thread(target=heartbeat, daemon=True).start()
    try:
        assert proc.stdout is not None
        with open(log, "w", encoding="utf-8") as fh:
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace")
                sys.stdout.write(line)
                sys.stdout.flush()
                fh.write(line)
                text = line.rstrip("\n")
                last_output[0] = time.monotonic()
                res.tail.append(text)
                if RECAP_RE.search(text):
                    res.recap = text
                if PYTEST_LAST_RE.match(text.strip()):
                    res.pytest_last = text.strip()
        res.rc = proc.wait()
    finally:
        timer.cancel()
        done.set()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return res


def current_task(sb: sandbox.Sandbox) -> str | None:
    """The Ansible task a `./lab up` inside sb is running (the last one its JSON-lines log started)."""
    try:
        logs = sorted(sb.path_inside(ANSIBLE_STATE).glob("ansible-*.jsonl"), key=lambda p: p.stat().st_mtime)
        if not logs:
            return None
        with open(logs[-1], "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 16384))
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except (OSError, RehearsalError):
        return None
    for line in reversed(lines):
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if isinstance(ev, dict) and str(ev.get("_event", "")).endswith("task_start"):
            return str(ev.get("task", {}).get("name", "?"))
    return None


def clone_into(sb: sandbox.Sandbox, repo: Path, dest: str) -> str:
    """`git clone` of repo's HEAD inside the sandbox, from a bundle (committed work only)."""
    head = run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], quiet=True).stdout.strip()
    branch = subprocess.run(["git", "-C", str(repo), "symbolic-ref", "-q", "--short", "HEAD"],
                            check=False, text=True, capture_output=True).stdout.strip()
    dirty = run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"], quiet=True).stdout
    if dirty.strip():
        say(f"note: {repo} has uncommitted changes; the rehearsal clones the commit {head} only")
    bundle = sb.dir / "seclab.bundle"
    refs = ["HEAD"] + ([f"refs/heads/{branch}"] if branch else [])
    run(["git", "-C", str(repo), "bundle", "create", str(bundle), *refs], quiet=True)
    inside = sb.path_inside("/tmp/seclab.bundle")
    shutil.copyfile(bundle, inside)
    bundle.unlink()
    rc = sandbox.execute(sb, ["git", "clone", "-q", "/tmp/seclab.bundle", dest], cwd="/root")
    inside.unlink()
    if rc != 0:
        raise RehearsalError(f"git clone inside the sandbox exited {rc}")
    return f"{branch or 'detached'}@{head}"


def collect_logs(sb: sandbox.Sandbox, dest: Path, clone: str) -> None:
    """Copy what explains a failure out of the sandbox before it is destroyed."""
    wanted = [("/var/log/seclab", "var-log-seclab"), ("/var/log/supervisor", "var-log-supervisor"),
              (ANSIBLE_STATE, "ansible"), (f"{clone}/.venv/install.log", "install.log")]
    for src, name in wanted:
        try:
            path = sb.path_inside(src)
            if path.is_dir():
                shutil.copytree(path, dest / name, symlinks=True, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("*.sock"))
            elif path.is_file():
                shutil.copy2(path, dest / name)
        except (OSError, shutil.Error, RehearsalError) as exc:
            say(f"could not copy {src}: {exc}")


def lab_up(sb: sandbox.Sandbox, log: Path, timeout_min: float,
           note: list[str]) -> tuple[StepResult, tuple[int, int] | None]:
    """`./lab up` in the clone; its (changed, failed) recap is noted for the phase table."""
    res = step(sb, ["./lab", "up"], log, timeout_min * 60, CLONE_DIR, show_task=True)
    recap = parse_recap(res.recap or "")
    note.append(f"changed={recap[0]} failed={recap[1]}" if recap else "no recap")
    return res, recap


def require_ok(res: StepResult, what: str, evidence: list[str]) -> None:
    if res.rc != 0 or res.timed_out:
        why = "timed out" if res.timed_out else f"exited {res.rc}"
        raise RehearsalError(f"{what} {why}:\n" + "\n".join(evidence))


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def rehearse(opts: argparse.Namespace) -> int:
    require_root()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGHUP, _on_sigterm)
    clock = Clock()
    name = f"rehearsal-{time.strftime('%Y%m%d-%H%M%S')}"
    logs = Path(opts.logs).resolve() if opts.logs else HOME / "logs" / name
    logs.mkdir(parents=True, exist_ok=True)
    repo = Path(opts.repo).resolve() if opts.repo else REPO
    sb: sandbox.Sandbox | None = None
    failure: str | None = None
    pytest_last: str | None = None
    started = time.monotonic()

    def budget(phase_min: float) -> float:
        """A phase's timeout in minutes, cut so the whole run ends by --deadline (then the logs are
        still copied out and the summary printed before an outer limit, e.g. CI's, kills the run)."""
        if not opts.deadline:
            return phase_min
        left = opts.deadline - (time.monotonic() - started) / 60 - DEADLINE_MARGIN_MIN
        if left <= 0:
            raise RehearsalError(f"the --deadline of {opts.deadline:g} minutes is reached")
        return min(phase_min, left)

    say(f"repository {repo}; logs {logs}")
    try:
        with clock.phase("base") as note:
            base, built = image.ensure_base(rebuild=opts.rebuild_base)
            note.append(f"{'built' if built else 'reused'} {base.name}")
        with clock.phase("copy") as note:
            sb = sandbox.create(name, base)
            commit = clone_into(sb, repo, CLONE_DIR)
            note.append(f"{sb.mode}, {sb.subnet()}, clone of {commit}")
        with clock.phase("up #1") as note:
            res, recap = lab_up(sb, logs / "up1.log", budget(opts.timeout_up), note)
            require_ok(res, "first ./lab up", failure_lines(res.tail))
        with clock.phase("up #2") as note:
            res, recap = lab_up(sb, logs / "up2.log", budget(opts.timeout_up), note)
            require_ok(res, "second ./lab up", failure_lines(res.tail))
            if recap != (0, 0):
                drift = [ln for ln in res.tail if ln.startswith("changed:")]
                raise RehearsalError("the second ./lab up did not report changed=0 failed=0: provisioning is "
                                     "not idempotent" + (f"\n{drift[-1]}" if drift else ""))
        if opts.tests != "none":
            with clock.phase(opts.tests) as note:
                if opts.tests == "smoke":
                    smoke = sb.path_inside("/tmp/rehearsal-smoke.sh")
                    shutil.copyfile(HERE / "smoke.sh", smoke)
                    argv = ["bash", "/tmp/rehearsal-smoke.sh"]
                else:
                    argv = ["./lab", "test"]
                res = step(sb, argv, logs / f"{opts.tests}.log", budget(opts.timeout_test) * 60, CLONE_DIR)
                pytest_last = res.pytest_last
                note.append(pytest_last.strip("= ") if pytest_last else f"exit {res.rc}")
                require_ok(res, " ".join(argv), list(res.tail)[-8:])
    except RehearsalError as exc:
        failure = str(exc)
    except KeyboardInterrupt as exc:
        failure = f"interrupted ({exc or 'Ctrl-C'})"
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the teardown
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if sb is not None and sb.alive() and (failure or opts.keep_logs):
            collect_logs(sb, logs, CLONE_DIR)
        if sb is not None:
            if opts.keep:
                say(f"kept sandbox {sb.name}: .ci/rehearse sandbox shell {sb.name} "
                    f"(the clone is {CLONE_DIR}); .ci/rehearse sandbox destroy {sb.name}")
            else:
                try:
                    sandbox.destroy(sb.name, quiet=True)
                except RehearsalError as exc:
                    say(f"teardown: {exc}")
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)
    total = time.monotonic() - started
    print("rehearse: phases\n" + clock.table(), flush=True)
    verdict = "FAILED" if failure else "PASSED"
    summary = (f"rehearse: {verdict} in {fmt_secs(total)}: "
               + ", ".join(f"{n} {fmt_secs(dt)}" + (f" ({note})" if note else "") for n, dt, note in clock.phases))
    if failure:
        print(f"rehearse: FAILURE: {failure}", flush=True)
        print(f"rehearse: logs kept in {logs}", flush=True)
    print(summary, flush=True)
    if pytest_last:
        print(pytest_last, flush=True)  # the test runner's closing line stays the last line of the run
    return 1 if failure else 0
