"""Sampling profiles (py-spy) of the app and the worker during a `lab bench --capacity` step.

Why py-spy: it samples a running process from outside (ptrace), so the lab is profiled exactly as
deployed - no profiler imported into the app, no restart, no code path that exists only for
measuring. `--nonblocking` keeps it from pausing the processes it samples (the latency measured in
the same window stays the lab's own), `--subprocesses` follows uvicorn's workers and Celery's pool
children from their parent's pid. The raw output ("collapsed stacks": `frame;frame;... count` per
line) is saved with the run; speedscope (https://www.speedscope.app) and flamegraph.pl open it as it is.

Self-time of a function: the samples whose innermost frame is that function (what the CPU was running,
not what was waiting below it). Idle threads are not sampled (py-spy's default), so the shares are of
busy CPU, which is what decides capacity.

py-spy needs ptrace: on hosts with kernel.yama.ptrace_scope 2 only root may attach; when attaching
fails, the step says why instead of holding an empty profile.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.layers import Proc, root_group

RATE_HZ = 50
"""Samples per second and process: enough for a top five over a 30 s window, light on 2 shared cores."""
TOP = 5
PROFILED = ("app", "worker")
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def pyspy_path() -> str | None:
    """py-spy of this interpreter's environment (pip installs it there with the dev extras), else PATH."""
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


def frame_function(frame: str) -> str:
    """`func (pkg/mod.py:123)` -> `func (pkg/mod.py)`: self-time is per function, not per line."""
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    return f"{m['function']} ({m['file']})"


def self_samples(raw: str) -> tuple[Counter[str], int]:
    """(samples per function as the innermost frame, total samples) of py-spy's raw format.

    Each line is a stack, outermost first, `;`-separated, then a space and its sample count; with
    --subprocesses the outermost frames name the processes (`process 123:"cmdline"`), never innermost."""
    counts: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, sep, n = line.rpartition(" ")
        if not sep or not n.isdigit() or not stack:
            continue
        frames = [f for f in stack.split(";") if f and not f.startswith("process ")]
        if not frames:
            continue
        counts[frame_function(frames[-1])] += int(n)
        total += int(n)
    return counts, total


def top_self(raw: str, n: int = TOP) -> list[dict[str, Any]]:
    """The `n` functions with the most self-time: {"function", "samples", "share"} (share of all samples)."""
    counts, total = self_samples(raw)
    return [{"function": f, "samples": c, "share": round(c / total, 4)}
            for f, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def main_pids(procs: dict[int, Proc], groups: tuple[str, ...] = PROFILED) -> dict[str, int]:
    """group -> the pid of its topmost process (uvicorn's and Celery's parent: py-spy -s follows the rest)."""
    out: dict[str, int] = {}
    for pid in sorted(procs):
        g = root_group(procs[pid])
        if g not in groups or g in out:
            continue
        parent = procs.get(procs[pid].ppid)
        if parent is None or root_group(parent) != g:
            out[g] = pid
    return out


@dataclass
class Recording:
    """One py-spy run in the background, writing raw collapsed stacks to `out`."""

    group: str
    pid: int
    out: Path
    proc: subprocess.Popen[bytes] | None
    error: str | None = None

    def finish(self, timeout_s: float = 30.0) -> dict[str, Any]:
        """Wait for py-spy; the profile's summary for the JSON (or why there is none)."""
        if self.proc is not None:
            try:
                _, err = self.proc.communicate(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                _, err = self.proc.communicate()
            if self.proc.returncode != 0 and not (self.out.exists() and self.out.stat().st_size):
                self.error = explain(err.decode(errors="replace"))
        if self.error:
            return {"pid": self.pid, "error": self.error}
        raw = self.out.read_text(encoding="utf-8", errors="replace") if self.out.exists() else ""
        _, total = self_samples(raw)
        if not total:
            return {"pid": self.pid, "file": self.out.name, "error": "py-spy took no sample (the processes were idle?)"}
        return {"pid": self.pid, "file": self.out.name, "samples": total, "rate_hz": RATE_HZ, "top": top_self(raw)}


def explain(stderr: str) -> str:
    """py-spy's failure in one line, with the ptrace reason spelled out when that is the cause."""
    last = next((ln.strip() for ln in reversed(stderr.splitlines()) if ln.strip()), "py-spy failed")
    if re.search(r"permission|ptrace|Operation not permitted|EPERM", stderr, re.IGNORECASE):
        return (f"py-spy could not attach (ptrace refused: run as root; kernel.yama.ptrace_scope 2 allows root "
                f"only, and a container needs CAP_SYS_PTRACE): {last}")
    return last


def start(group: str, pid: int, out: Path, seconds: float, *, rate_hz: int = RATE_HZ) -> Recording:
    """py-spy record of `pid` and its children for `seconds`, raw format, into `out`."""
    exe = pyspy_path()
    if exe is None:
        return Recording(group, pid, out, None, "py-spy is not installed (pip install -e '.[dev]' brings it)")
    cmd = [exe, "record", "--pid", str(pid), "--subprocesses", "--nonblocking", "--format", "raw",
           "--rate", str(rate_hz), "--duration", str(max(1, round(seconds))), "--output", str(out)]
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except OSError as exc:
        return Recording(group, pid, out, None, f"py-spy did not start: {exc}")
    return Recording(group, pid, out, proc)
