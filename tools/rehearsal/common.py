"""Shared bits: where the harness keeps its state, a lock, command running, timing."""

from __future__ import annotations

import fcntl
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

# Outside the repository, so a clone never carries a multi-GB root and CI on the same machine reuses it.
HOME = Path(os.environ.get("SECLAB_REHEARSAL_HOME", "/var/cache/seclab-rehearsal"))
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


class RehearsalError(Exception):
    """A failure the harness explains in one line (no traceback for the user)."""


def say(msg: str) -> None:
    print(f"rehearse: {msg}", flush=True)


def run(cmd: Sequence[str], *, check: bool = True, quiet: bool = False,
        input_text: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a host command; on failure raise with its last output lines (quiet: capture, else inherit)."""
    res = subprocess.run(list(cmd), check=False, text=True, input=input_text, env=env,
                         stdout=subprocess.PIPE if quiet else None,
                         stderr=subprocess.STDOUT if quiet else None)
    if check and res.returncode != 0:
        tail = "\n".join((res.stdout or "").strip().splitlines()[-15:])
        raise RehearsalError(f"{shlex.join(cmd)} exited {res.returncode}" + (f":\n{tail}" if tail else ""))
    return res


def require_root() -> None:
    if os.geteuid() != 0:
        raise RehearsalError("needs root (namespaces, mounts, veth, nftables)")


@contextmanager
def locked(name: str) -> Iterator[None]:
    """An exclusive lock under HOME: one base build, one subnet allocation at a time."""
    HOME.mkdir(parents=True, exist_ok=True)
    with open(HOME / f".{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def fmt_secs(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class Clock:
    """Phase wall times, printed as each phase ends and again in the summary."""

    def __init__(self) -> None:
        self.phases: list[tuple[str, float, str]] = []

    @contextmanager
    def phase(self, name: str) -> Iterator[list[str]]:
        note: list[str] = []
        say(f"== {name}")
        t0 = time.monotonic()
        try:
            yield note
        finally:
            dt = time.monotonic() - t0
            self.phases.append((name, dt, " ".join(note)))
            say(f"== {name}: {fmt_secs(dt)}" + (f" ({' '.join(note)})" if note else ""))
            sys.stdout.flush()

    def table(self) -> str:
        return "\n".join(f"  {n:<12} {fmt_secs(dt):>8}  {note}" for n, dt, note in self.phases)
