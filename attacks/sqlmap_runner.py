"""sqlmap (Debian package) against the API, bounded, with its verdict parsed into evidence.

Why sqlmap on top of the hand-written cases: it tries hundreds of boolean, error, time and UNION
payloads per parameter and compares the answers, which a list of fixed payloads cannot. Bounded:
`--timeout`, `--retries 1`, a `--delay` that keeps it under the per-user rate limit, and a wall-clock
limit after which the process is killed and the verdict is "inconclusive". Everything it writes goes
to a temporary directory; its traffic file (`-t`) is the evidence of what the target answered.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections import Counter
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Verdict = Literal["not-injectable", "injectable", "inconclusive"]

NOT_INJECTABLE = "all tested parameters do not appear to be injectable"
_VULNERABLE = re.compile(r"(?:Parameter: (?P<p1>.+?) \(|parameter '(?P<p2>[^']+)' is vulnerable)")
_IDENTIFIED = "sqlmap identified the following injection point"
_RESPONSE = re.compile(r"^HTTP response \[#\d+\] \((\d{3})", re.MULTILINE)
_PROBLEM = re.compile(r'"type"\s*:\s*"urn:seclab:problem:([a-z0-9-]+)"')
_NOTABLE = re.compile(r"\[(?:CRITICAL|WARNING)\] (.+)")


class SqlmapSpec(BaseModel):
    """One sqlmap target: a URL with `*` injection markers, optionally a JSON body with markers."""

    model_config = ConfigDict(extra="forbid")

    url: str
    method: Literal["GET", "POST"] = "GET"
    data: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    level: int = 2
    risk: int = 1
    timeout_s: int = 10
    delay_s: float = 0.0
    dbms: str | None = "PostgreSQL"
    wall_clock_s: float = 300.0
    user_agent: str = "seclab-probe/1"
    extra_args: list[str] = Field(default_factory=list)


class SqlmapResult(BaseModel):
    """sqlmap's verdict and what the target answered during the run."""

    model_config = ConfigDict(extra="forbid")

    verdict: Verdict
    injectable_params: list[str] = Field(default_factory=list)
    returncode: int | None = None
    timed_out: bool = False
    duration_s: float = 0.0
    requests: int = 0
    statuses: dict[str, int] = Field(default_factory=dict)
    problems: dict[str, int] = Field(default_factory=dict)
    notable: list[str] = Field(default_factory=list)
    command: list[str] = Field(default_factory=list)


def command(spec: SqlmapSpec, out_dir: Path, sqlmap: str = "sqlmap") -> list[str]:
    """The argv (the bearer token is passed as a header; the report redacts it)."""
    cmd = [
        sqlmap, "-u", spec.url, "--method", spec.method, "--batch", "--level", str(spec.level), "--risk",
        str(spec.risk), "--timeout", str(spec.timeout_s), "--retries", "1", "--output-dir", str(out_dir),
        "-t", str(out_dir / "traffic.txt"), "--flush-session", "--disable-coloring", "--user-agent",
        spec.user_agent, "--ignore-code", "401,403,404,413,415,422,429",
    ]
    if spec.data is not None:
        cmd += ["--data", spec.data]
    for k, v in spec.headers.items():
        cmd += ["-H", f"{k}: {v}"]
    if spec.delay_s > 0:
        cmd += ["--delay", f"{spec.delay_s:.2f}"]
    if spec.dbms:
        cmd += ["--dbms", spec.dbms]
    return cmd + list(spec.extra_args)


def parse_output(stdout: str) -> tuple[Verdict, list[str], list[str]]:
    """(verdict, injectable parameters, notable warning lines) from sqlmap's console output."""
    params = sorted({(m.group("p1") or m.group("p2") or "").strip() for m in _VULNERABLE.finditer(stdout)} - {""})
    if _IDENTIFIED in stdout or params:
        verdict: Verdict = "injectable"
    elif NOT_INJECTABLE in stdout:
        verdict = "not-injectable"
    else:
        verdict = "inconclusive"
    notable: list[str] = []
    for m in _NOTABLE.finditer(stdout):
        line = m.group(1).strip()
        if line not in notable and len(notable) < 8:
            notable.append(line[:240])
    return verdict, params, notable


def parse_traffic(text: str) -> tuple[int, dict[str, int], dict[str, int]]:
    """(responses, status counts, problem-type counts) from sqlmap's `-t` traffic file."""
    statuses = Counter(_RESPONSE.findall(text))
    problems = Counter(_PROBLEM.findall(text))
    return sum(statuses.values()), dict(sorted(statuses.items())), dict(problems.most_common())


def redact(cmd: list[str]) -> list[str]:
    return [re.sub(r"(Bearer )\S+", r"\1<redacted>", a) for a in cmd]


def run(spec: SqlmapSpec, sqlmap: str | None = None) -> SqlmapResult:
    """Run sqlmap once (blocking), kill it at the wall-clock limit, parse and clean up."""
    import time

    exe = sqlmap or shutil.which("sqlmap")
    if exe is None:
        raise FileNotFoundError("sqlmap is not installed (apt-get install sqlmap)")
    out_dir = Path(tempfile.mkdtemp(prefix="seclab-sqlmap-"))
    cmd = command(spec, out_dir, exe)
    t0 = time.monotonic()
    timed_out = False
    # Own session and process group: the wall-clock kill reaches sqlmap's children too, and only them.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            text=True, start_new_session=True, env={**os.environ, "HOME": str(out_dir)})
    try:
        stdout, _ = proc.communicate(timeout=spec.wall_clock_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            stdout, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, _ = proc.communicate()
    try:
        verdict, params, notable = parse_output(stdout or "")
        if timed_out and verdict != "injectable":
            verdict = "inconclusive"
        traffic = out_dir / "traffic.txt"
        text = traffic.read_text(encoding="utf-8", errors="replace") if traffic.exists() else ""
        n, statuses, problems = parse_traffic(text)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    return SqlmapResult(
        verdict=verdict, injectable_params=params, returncode=proc.returncode, timed_out=timed_out,
        duration_s=round(time.monotonic() - t0, 1), requests=n, statuses=statuses, problems=problems,
        notable=notable, command=redact(cmd),
    )
