"""The lab's running edge as a WAF measurement target: real token, paced under limit_req, verdicts from its logs.

Why a separate module: figures from throw-away local instances (local.py) say what the *configuration*
does; these say what the deployed edge does, with its routes, limits and logs. What differs:

- limit_req: the edge allows lab.yml `limits.rate_limits.per_address_per_minute` per client address on
  /api/ (burst 20 on the message route). Requests are paced below it (`default_rate`: 80% of it), and a
  429 the edge answered itself (access log: no upstream contacted) is retried after its Retry-After; it
  is never counted as a WAF verdict. Nothing is exempted at the edge: the measured edge is the deployed one.
- verdicts: a 403 `urn:seclab:problem:waf-blocked` is a block; an answer with an upstream in the access
  log (the app's 404/401/429 included) passed the WAF; the edge's own 400/404/405/413 are "edge-refused".
  Matched rule ids come from nginx's error log (blocked transactions never reach the audit log:
  ModSecurity-nginx #55, #182) and from the JSON audit log, joined by the request id each request sends.
- the edge must not change under a run: `deployed_paranoia` holds the provisioning lock (the file
  `flock` users hold around `./lab up`, SECLAB_UP_LOCK, empty: none) while the edge is measured, and
  for another paranoia level switches the deployed WAF for that run and restores it byte for byte.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attacks.evidence import (
    LogTail,
    answered_by_edge,
    parse_access_log,
    parse_modsec_audit_log,
    parse_modsec_error_log,
)

LOCK_FILE = os.environ.get("SECLAB_UP_LOCK", "/tmp/seclab-up.lock")
"""The file held (flock) around `./lab up` on a shared lab host; a paranoia switch holds it too."""
PACE_FRACTION = 0.8
"""Share of the edge's per-address rate the runners use: bursts of jitter stay inside limit_req's burst."""


def default_rate(lab: Any) -> float:
    """Requests per second below the edge's per-address limit (limit_req zones edge_address/edge_messages)."""
    return PACE_FRACTION * lab.limits.rate_limits.per_address_per_minute / 60.0


class Pacer:
    """Starts at most `per_second` requests per second (None: no pacing, for local instances)."""

    def __init__(self, per_second: float | None) -> None:
        self.interval = 1.0 / per_second if per_second else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        await asyncio.sleep(max(0.0, start - now))


class TokenSource:
    """A real access token of a lab user from the lab's identity provider, renewed before it expires."""

    def __init__(self, lab: Any, user: str) -> None:
        self.lab = lab
        self.user = user
        self.refresh_s = max(30, lab.identity.access_token_lifetime_s - 60)
        self._token = ""
        self._at = 0.0
        self._lock = asyncio.Lock()

    async def bearer(self) -> str:
        async with self._lock:
            if not self._token or time.monotonic() - self._at > self.refresh_s:
                from labdef.tokens import get_access_token

                self._token = await asyncio.to_thread(get_access_token, self.lab, self.user)
                self._at = time.monotonic()
            return self._token


@dataclass
class WafLogs:
    """The logs that carry a WAF verdict, read from where they were when the run started."""

    error: LogTail
    audit: LogTail
    access: LogTail | None = None

    @classmethod
    def of_edge(cls, lab: Any) -> WafLogs:
        """The deployed edge's logs (edge role `edge_error_log`/`edge_access_log`, waf role `SecAuditLog`)."""
        from attacks.edge_waf import deployed_audit_log

        logs = Path(lab.paths.logs)
        return cls(error=LogTail(logs / "nginx-error.log"), audit=LogTail(deployed_audit_log(lab)),
                   access=LogTail(logs / "nginx-access.json"))

    @classmethod
    def of_instance(cls, inst: Any) -> WafLogs:
        return cls(error=LogTail(inst.prefix / "logs" / "error.log"), audit=LogTail(inst.audit_log))

    def read(self) -> tuple[dict[str, dict[str, Any]], dict[str, list[str]]]:
        """(access-log entries by request id, matched rule ids by transaction id) written since the start."""
        access = parse_access_log(self.access.lines()) if self.access else {}
        rules: dict[str, list[str]] = {}
        for src in (parse_modsec_error_log(self.error.lines()), parse_modsec_audit_log(self.audit.lines())):
            for tid, hits in src.items():
                seen = rules.setdefault(tid, [])
                seen.extend(h.id for h in hits if h.id not in seen)
        return access, rules

    def errors(self) -> dict[str, str]:
        tails = {"error_log": self.error, "audit_log": self.audit, **({"access_log": self.access} if self.access else {})}
        return {k: f"{t.path}: {t.error}" for k, t in tails.items() if t.error}


VERDICTS = ("waf-blocked", "passed", "edge-refused", "edge-rate-limited", "no-answer", "not-sent", "unknown")


def verdict(status: int, problem: str | None, access: dict[str, Any] | None, local: bool, logged: bool = False) -> str:
    """One request's outcome at the WAF, from the answer and (on the edge) its access-log entry.

    `logged`: the edge's access log was readable. A refusal without an entry under the request's id
    is then nginx's own answer to a request it could not parse as far as the X-Request-ID header
    (a request that reached an upstream always has its id logged)."""
    if status == -1:
        return "not-sent"
    if status == 0:
        return "no-answer"
    if status == 403 and problem == "waf-blocked":
        return "waf-blocked"
    if access is not None:
        if answered_by_edge(access):
            return "edge-rate-limited" if status == 429 else "edge-refused"
        return "passed"  # an upstream answered: the WAF let it through, whatever the app said
    if local:
        # Local instances: the backend answers 200 to everything; other statuses are nginx's own.
        return "passed" if 200 <= status < 400 else "edge-refused"
    if status == 429:
        return "edge-rate-limited"
    return "edge-refused" if logged and status >= 400 else "unknown"


def deployed_level(conf_dir: Path) -> int | None:
    """tx.paranoia_level of the deployed crs-setup.conf."""
    try:
        text = (conf_dir / "crs-setup.conf").read_text(encoding="utf-8")
    except OSError:
        return None
    for line in text.splitlines():
        if "setvar:tx.paranoia_level=" in line:
            return int(line.split("setvar:tx.paranoia_level=", 1)[1].strip().strip('"'))
    return None


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def held_by_ancestor(path: str) -> bool:
    """True when a process above this one holds the flock on `path` (e.g. `flock LOCK ./lab test`):
    taking it again would wait for ourselves."""
    try:
        st = os.stat(path)
        locks = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return False
    key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    mine = _ancestors()
    for line in locks:
        parts = line.split()
        if "->" in parts or len(parts) < 6 or parts[1] != "FLOCK":
            continue
        if parts[5] == key and parts[4].isdigit() and int(parts[4]) in mine:
            return True
    return False


@contextmanager
def provisioning_lock(path: str = LOCK_FILE) -> Iterator[None]:
    """Hold the lock `./lab up` runs under on a shared host (empty path: no lock), so neither a
    provisioning run nor a WAF mode switch (`lab attack --edge detection-only`) changes the edge mid-run.
    Blocking, in line with the `flock` waiters queued on the same file; already held by a parent
    process (the whole run is under `flock`), it is not taken again."""
    if not path or held_by_ancestor(path):
        yield
        return
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for {path} (a provisioning run or WAF switch holds it)", file=sys.stderr, flush=True)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextmanager
def deployed_paranoia(lab: Any, level: int, lock_file: str = LOCK_FILE) -> Iterator[int]:
    """Run the body against the deployed edge with its CRS at `level`, holding the provisioning lock.

    The lock is held for the whole measurement (under `flock` on the same file it is the parent's).
    If the edge does not run `level`, the WAF files are re-rendered with it (the deployed audit log and
    temp dir kept), nginx is reloaded gracefully, and in `finally` the snapshot is written back byte
    for byte and nginx reloaded again, so `./lab up` sees no drift afterwards. A WAF in DetectionOnly
    is refused: it blocks nothing, so a block rate measured through it would be meaningless.
    """
    from attacks.edge_waf import (
        deployed_audit_log,
        deployed_setting,
        engine_line,
        reload_edge,
        waf_conf_dir,
    )
    from waf_rules import render

    d = waf_conf_dir(lab)
    with provisioning_lock(lock_file):
        current = deployed_level(d)
        if current is None:
            raise RuntimeError(f"no deployed WAF configuration in {d}: is the edge up (./lab up)?")
        if engine_line(d) != "SecRuleEngine On":
            raise RuntimeError(f"the edge's WAF is not blocking ({engine_line(d)!r}): measure a blocking edge")
        if current == level:
            yield level
            return
        files = [d / dst for dst in render.TEMPLATES.values()] + [d / s for s in render.NGINX_SNIPPETS]
        snapshot = {p: p.read_bytes() for p in files if p.exists()}
        audit_log = str(deployed_audit_log(lab))
        tmp_dir = deployed_setting(d, "SecTmpDir") or str(Path(lab.paths.data) / "waf")
        try:
            render.render(lab, d, audit_log, mode_override="blocking", paranoia_override=level, tmp_dir=tmp_dir)
            reload_edge()
            yield level
        finally:
            for path, data in snapshot.items():
                path.write_bytes(data)
            reload_edge()
