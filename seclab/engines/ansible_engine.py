"""The Ansible engine: `lab up` / `lab down` on Debian hosts (this one by default).

It writes the lab definition (`labdef.as_vars`) to a 0600 file in a private temp dir, runs
`ansible-playbook` with `playbooks/ansible.cfg` and the `ansible.posix.jsonl` stdout callback, reports
each task as it starts through `on_event`, and returns the PLAY RECAP numbers, the duration and, on
failure, one line naming the failing task and its message. Why JSON lines: progress and errors are
read from structured events, not scraped from human output. Results of `no_log` tasks reach the
callback already censored by Ansible, so the log kept for debugging holds no secret.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import labdef
from labdef.errors import LabError

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "playbooks"
DEFAULT_INVENTORY = PLAYBOOKS / "inventory" / "localhost.yml"
STATS_KEYS = ("ok", "changed", "failures", "unreachable", "skipped", "rescued", "ignored")

EventCallback = Callable[[str], None]


@dataclass
class HostStats:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0

    @classmethod
    def from_recap(cls, s: dict[str, Any]) -> HostStats:
        return cls(ok=int(s.get("ok", 0)), changed=int(s.get("changed", 0)), failed=int(s.get("failures", 0)),
                   unreachable=int(s.get("unreachable", 0)), skipped=int(s.get("skipped", 0)),
                   rescued=int(s.get("rescued", 0)), ignored=int(s.get("ignored", 0)))


@dataclass
class Result:
    """What one playbook run did: per-host PLAY RECAP, duration, and a one-line error if it failed."""

    playbook: str
    returncode: int
    duration_s: float
    hosts: dict[str, HostStats] = field(default_factory=dict)
    error: str | None = None
    log_path: str | None = None
    changed_tasks: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.returncode == 0 and bool(self.hosts)
                and all(h.failed == 0 and h.unreachable == 0 for h in self.hosts.values()))

    @property
    def changed(self) -> int:
        return sum(h.changed for h in self.hosts.values())

    def summary(self) -> str:
        hosts = "; ".join(f"{name} ok={h.ok} changed={h.changed} failed={h.failed}"
                          + (f" unreachable={h.unreachable}" if h.unreachable else "")
                          for name, h in sorted(self.hosts.items())) or "no host ran"
        state = "done" if self.ok else "FAILED"
        return f"ansible {self.playbook}: {state} in {self.duration_s:.0f}s ({hosts})"

    def as_dict(self) -> dict[str, Any]:
        return {"playbook": self.playbook, "ok": self.ok, "returncode": self.returncode,
                "duration_s": round(self.duration_s, 1), "error": self.error, "log": self.log_path,
                "hosts": {n: vars(h) for n, h in self.hosts.items()}}


def ansible_playbook() -> str:
    """`ansible-playbook` beside the running interpreter (the lab's venv), else on the PATH."""
    here = Path(sys.executable).parent / "ansible-playbook"
    if here.is_file():
        return str(here)
    found = shutil.which("ansible-playbook")
    if found:
        return found
    raise LabError("ansible-playbook not found: install the controller tools (pip install -e '.[dev]')")


def _log_dir() -> Path:
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "seclab"
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    return base


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def _one_line(text: Any, limit: int = 300) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _failure_message(res: dict[str, Any]) -> str:
    """The most telling line of a failed result: module msg, else the tool's JSON msg, else stderr."""
    items = [r for r in res.get("results") or [] if isinstance(r, dict) and r.get("failed")]
    if items:  # a loop: name the first failed item
        label = items[0].get("_ansible_item_label", items[0].get("item"))
        return f"item {_one_line(label, 80)}: {_failure_message(items[0])}"
    msg = res.get("msg") or ""
    stdout = (res.get("stdout") or "").strip()
    stderr = (res.get("stderr") or "").strip()
    if stdout.splitlines():
        last = stdout.splitlines()[-1]
        try:
            tool = json.loads(last)
            if isinstance(tool, dict) and tool.get("msg"):
                return _one_line(tool["msg"])
        except ValueError:
            pass
    if msg and msg != "non-zero return code" and "non-zero return code" not in msg:
        return _one_line(msg)
    if stderr:
        return _one_line(stderr.splitlines()[-1])
    if stdout:
        return _one_line(stdout.splitlines()[-1])
    return _one_line(msg or "failed")


class _Parser:
    """Reads ansible.posix.jsonl events: task starts, failures, the final stats."""

    def __init__(self, on_event: EventCallback | None, verbose: bool) -> None:
        self.on_event = on_event
        self.verbose = verbose
        self.stats: dict[str, HostStats] = {}
        self.failure: str | None = None
        self.other: deque[str] = deque(maxlen=20)
        self.changed_tasks: list[str] = []

    def _emit(self, text: str) -> None:
        if self.on_event is not None:
            self.on_event(text)

    def feed(self, line: str) -> None:
        line = line.strip()
        if not line:
            return
        try:
            ev = json.loads(line)
        except ValueError:
            self.other.append(line)
            return
        if not isinstance(ev, dict):
            return
        kind = ev.get("_event", "")
        if kind in ("v2_runner_on_start", "v2_playbook_on_task_start", "v2_playbook_on_handler_task_start"):
            self._emit(ev.get("task", {}).get("name", "?"))
        elif kind in ("v2_runner_on_failed", "v2_runner_on_unreachable"):
            task = ev.get("task", {}).get("name", "?")
            for host, res in (ev.get("hosts") or {}).items():
                what = "unreachable" if kind.endswith("unreachable") else "failed"
                # The last failure is the fatal one; earlier ones were ignored (ignore_errors) or rescued.
                self.failure = f"{what}: task '{task}' on {host}: {_failure_message(res)}"
            if self.verbose:
                self._emit(f"FAILED {task}")
        elif kind == "v2_runner_on_ok":
            task = ev.get("task", {}).get("name", "?")
            for res in (ev.get("hosts") or {}).values():
                if res.get("changed") and task not in self.changed_tasks:
                    # Named in the summary: a second run that is not changed=0 says what drifted.
                    self.changed_tasks.append(task)
                if self.verbose:
                    self._emit(f"{'changed' if res.get('changed') else 'ok'}: {task}")
        elif kind == "v2_playbook_on_stats":
            self.stats = {h: HostStats.from_recap(s) for h, s in (ev.get("stats") or {}).items()}


def run_playbook(
    playbook: str,
    lab: labdef.LabDefinition,
    *,
    inventory: Path | str | None = None,
    extra_vars: dict[str, Any] | None = None,
    verbose: bool = False,
    on_event: EventCallback | None = None,
) -> Result:
    """Run playbooks/<playbook> with the lab definition as extra vars; never raises on a failed run."""
    inv = Path(inventory) if inventory is not None else DEFAULT_INVENTORY
    if not inv.is_file():
        raise LabError(f"inventory {inv} not found")
    name = Path(playbook).stem
    log_path = _log_dir() / f"ansible-{name}.jsonl"
    with tempfile.TemporaryDirectory(prefix="seclab-ansible-") as tmp:  # created 0700
        vars_file = Path(tmp) / "labvars.json"
        _write_private(vars_file, json.dumps(labdef.as_vars(lab)))
        cmd = [ansible_playbook(), "-i", str(inv), str(PLAYBOOKS / playbook), "-e", f"@{vars_file}"]
        if extra_vars:
            extra_file = Path(tmp) / "extra.json"
            _write_private(extra_file, json.dumps(extra_vars))
            cmd += ["-e", f"@{extra_file}"]
        # The controller's SECLAB_* settings (e.g. SECLAB_LAB_FILE=lab.yml from `lab -f`) must not leak into
        # the tasks: on a local connection they inherit this environment, and the lab's own tools read
        # SECLAB_LAB_FILE as the rendered lab.json (a YAML path there broke `app.db.admin sync`).
        env = {k: v for k, v in os.environ.items() if not k.startswith("SECLAB_")}
        env.update({
            "ANSIBLE_CONFIG": str(PLAYBOOKS / "ansible.cfg"),
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.jsonl",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "PYTHONUNBUFFERED": "1",
        })
        parser = _Parser(on_event, verbose)
        stderr_tail: deque[str] = deque(maxlen=20)
        start = time.monotonic()
        with open(log_path, "w", encoding="utf-8") as log:
            os.chmod(log_path, 0o600)
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, bufsize=1)

            def _drain_stderr() -> None:
                assert proc.stderr is not None
                for line in proc.stderr:
                    if line.strip():
                        stderr_tail.append(line.rstrip())

            t = threading.Thread(target=_drain_stderr, daemon=True)
            t.start()
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                parser.feed(line)
            rc = proc.wait()
            t.join(timeout=5)
        duration = time.monotonic() - start
    result = Result(playbook=name, returncode=rc, duration_s=duration, hosts=parser.stats, log_path=str(log_path),
                    changed_tasks=parser.changed_tasks)
    if not result.ok:
        errors = [ln for ln in stderr_tail if "ERROR" in ln] or list(stderr_tail) or list(parser.other)
        result.error = parser.failure or (_one_line(errors[-1]) if errors else f"ansible-playbook exited {rc}")
        result.error += f" (log: {log_path})"
    return result


def _local(inventory: Path | str | None) -> bool:
    return inventory is None or Path(inventory).resolve() == DEFAULT_INVENTORY.resolve()


def up(
    lab: labdef.LabDefinition,
    inventory: Path | str | None = None,
    verbose: bool = False,
    on_event: EventCallback | None = None,
    seclab_python: str | None = None,
) -> Result:
    """Provision and start the lab (playbooks/site.yml). Idempotent: a second run changes nothing.

    On this host the service virtualenv is built from the interpreter the CLI runs on (3.12+); for a
    remote inventory the runtime role finds one there unless `seclab_python` names it.
    """
    extra: dict[str, Any] = {}
    if seclab_python:
        extra["seclab_python"] = seclab_python
    elif _local(inventory) and sys.version_info >= (3, 12):
        extra["seclab_python"] = os.path.realpath(sys.executable)
    return run_playbook("site.yml", lab, inventory=inventory, extra_vars=extra, verbose=verbose, on_event=on_event)


def down(
    lab: labdef.LabDefinition,
    purge: bool = False,
    inventory: Path | str | None = None,
    verbose: bool = False,
    on_event: EventCallback | None = None,
) -> Result:
    """Stop every lab process (playbooks/down.yml); purge=True also deletes data, settings and secrets."""
    return run_playbook("down.yml", lab, inventory=inventory, extra_vars={"purge": purge},
                        verbose=verbose, on_event=on_event)
