"""Run the default reload plan: the graceful action of each due service, then proof by handshake.

Why sequential and in plan order: data stores (PostgreSQL, Redis) first, the app next, the edge
last, one service at a time, so at most one service is between two certificates at any moment.
Every command is an argv list run without a shell (OWASP Top 10 2021 A03); the Redis reload
password travels in the child's environment (REDISCLI_AUTH), never on a command line (ASVS 4.0.3
V6.4.1). A service counts as reloaded only when its listener presents the new certificate.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from labdef import LabDefinition

from . import loaded
from .layout import Layout
from .probe import client_context, file_sha256, presented_sha256
from .services import Consumer

Manager = Literal["supervisor", "systemd"]

# Mirrors of role defaults (a unit test keeps them equal): the Redis ACL user allowed CONFIG SET
# and its root-only password file (redis role, secrets role), the nginx configuration (edge role).
REDIS_RELOAD_USER = "seclab_tls_reload"
REDIS_RELOAD_SECRET = "redis_tls_reload_password"
NGINX_CONF = "/etc/nginx/nginx.conf"
UNIT_PREFIX = "seclab-"  # process_unit_prefix


class Outcome(BaseModel):
    service: str
    program: str
    action: str
    how: str
    ok: bool
    skipped: bool = False
    detail: str = ""
    commands: list[str] = []
    seconds: float = 0.0


def detect_manager() -> Manager:
    """systemd where it is PID 1 (sd_booted), supervisord otherwise (containers, this lab's hosts)."""
    return "systemd" if Path("/run/systemd/system").is_dir() else "supervisor"


async def _run(
    argv: list[str], env: dict[str, str] | None = None, timeout_s: float = 120.0
) -> tuple[int, str]:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, **env} if env else None,
        )
    except OSError as exc:
        return 127, str(exc)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return 124, f"timed out after {timeout_s}s"
    return proc.returncode or 0, out.decode(errors="replace").strip()[-500:]


class Reloader:
    """Executes actions for one lab on this host."""

    def __init__(self, lab: LabDefinition, layout: Layout, manager: Manager | None = None) -> None:
        self.lab, self.layout = lab, layout
        self.manager: Manager = manager or detect_manager()
        self.probe_timeout_s = 120.0

    # --- process manager --------------------------------------------------------------------------
    async def main_pid(self, program: str) -> int | None:
        """Main PID of a running program; None when it is absent or not running."""
        if self.manager == "supervisor":
            rc, out = await _run(["supervisorctl", "pid", program])
        else:
            rc, out = await _run(["systemctl", "show", "-P", "MainPID", f"{UNIT_PREFIX}{program}.service"])
        return int(out) if rc == 0 and out.isdigit() and int(out) > 0 else None

    def _signal(self, program: str, sig: str) -> list[str]:
        if self.manager == "supervisor":
            return ["supervisorctl", "signal", sig, program]
        return ["systemctl", "kill", "--kill-whom=main", "-s", sig, f"{UNIT_PREFIX}{program}.service"]

    def _restart(self, program: str) -> list[str]:
        if self.manager == "supervisor":
            return ["supervisorctl", "restart", program]
        return ["systemctl", "restart", f"{UNIT_PREFIX}{program}.service"]

    # --- actions ------------------------------------------------------------------------------------
    def commands(self, c: Consumer) -> list[list[str]]:
        """The argv lists of a consumer's action (shown to the user; the password is not in them)."""
        L = self.layout
        if c.action == "nginx-reload":
            return [["nginx", "-t", "-q", "-c", NGINX_CONF], ["nginx", "-s", "reload", "-c", NGINX_CONF]]
        if c.action == "pg-reload":
            return [
                [
                    "runuser",
                    "-u",
                    "postgres",
                    "--",
                    "psql",
                    "-h",
                    "/var/run/postgresql",
                    "-p",
                    str(self.lab.ports.postgres),
                    "-d",
                    "postgres",
                    "-Atqc",
                    "SELECT pg_reload_conf()",
                ]
            ]
        if c.action == "redis-tls":
            name = c.uses[0].cert
            # The client certificate a data node presents to its primary (replication), when it has one.
            peer = [
                arg
                for u in c.uses[1:]
                for arg in ("tls-client-cert-file", str(L.chain(u.cert)), "tls-client-key-file", str(L.key(u.cert)))
            ]
            port = c.probe.port if c.probe is not None else self.lab.ports.redis
            return [
                [
                    "redis-cli",
                    "--no-auth-warning",
                    "--user",
                    REDIS_RELOAD_USER,
                    "--tls",
                    "--cacert",
                    str(L.ca_bundle),
                    "--cert",
                    str(L.chain("app-redis")),
                    "--key",
                    str(L.key("app-redis")),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "CONFIG",
                    "SET",
                    *peer,
                    "tls-cert-file",
                    str(L.chain(name)),
                    "tls-key-file",
                    str(L.key(name)),
                    "tls-ca-cert-file",
                    str(L.ca_bundle),
                ]
            ]
        if c.action == "hup-rolling":
            return [self._signal(c.program, "HUP")]
        if c.action == "restart":
            return [self._restart(c.program)]
        return []

    def _env(self, c: Consumer) -> dict[str, str] | None:
        if c.action != "redis-tls":
            return None
        secret = Path(self.lab.paths.secrets) / REDIS_RELOAD_SECRET
        return {"REDISCLI_AUTH": secret.read_text(encoding="utf-8").strip()}

    async def _workers(self, pid: int) -> set[int]:
        """uvicorn's worker processes (multiprocessing spawn children, not the resource tracker)."""
        out: set[int] = set()
        for task in Path(f"/proc/{pid}/task").glob("*/children"):
            for child in task.read_text().split():
                try:
                    cmd = Path(f"/proc/{child}/cmdline").read_bytes()
                except OSError:
                    continue
                if b"spawn_main" in cmd:
                    out.add(int(child))
        return out

    async def _wait_gone(self, pids: set[int], deadline: float) -> bool:
        while time.monotonic() < deadline:
            if not any(Path(f"/proc/{p}").exists() for p in pids):
                return True
            await asyncio.sleep(0.2)
        return False

    async def _prove(self, c: Consumer, deadline: float) -> str | None:
        """None when the listener presents the certificate on disk (3 handshakes in a row), else why not."""
        if c.probe is None:
            return None
        p, L = c.probe, self.layout
        want = file_sha256(L.cert(p.cert))
        client = (L.chain(p.client), L.key(p.client)) if p.client else None
        ctx = client_context(L.ca_bundle, client, check_name=p.server_name is not None)
        streak, last = 0, "no handshake yet"
        while time.monotonic() < deadline:
            try:
                got = await presented_sha256(
                    "127.0.0.1", p.port, ctx, server_name=p.server_name, postgres=p.postgres
                )
                streak = streak + 1 if got == want else 0
                last = "presents the previous certificate" if got != want else "ok"
            except (OSError, ssl.SSLError, TimeoutError, asyncio.IncompleteReadError) as exc:
                streak, last = 0, f"handshake failed: {exc}"
            if streak >= 3:
                return None
            await asyncio.sleep(0.2)
        return f"port {p.port}: {last}"

    async def apply(self, c: Consumer) -> Outcome:
        start = time.monotonic()
        argvs = self.commands(c)
        out = Outcome(
            service=c.service,
            program=c.program,
            action=c.action,
            how=c.how,
            ok=True,
            commands=[" ".join(a) for a in argvs],
        )
        pid = await self.main_pid(c.program)
        if pid is None:
            # Not running here (another identity provider, a disabled exporter): it loads the current
            # files when it starts; nothing is recorded, so the next `./lab up` checks again.
            out.skipped, out.detail = True, "not running on this host"
            return out
        if c.action == "reprovision":
            out.ok, out.detail = False, "run ./lab up to finish (this service needs its role)"
            return out
        before = await self._workers(pid) if c.action == "hup-rolling" else set()
        deadline = start + self.probe_timeout_s
        try:
            env = self._env(c)
        except OSError as exc:
            out.ok, out.detail = False, f"cannot read the reload credential: {exc.strerror}"
            return out
        for argv in argvs:
            rc, text = await _run(argv, env)
            if rc != 0 or (c.action == "redis-tls" and text != "OK"):
                out.ok, out.detail = False, f"`{argv[0]}` exited {rc}: {text}"
                out.seconds = round(time.monotonic() - start, 2)
                return out
        if before and not await self._wait_gone(before, deadline):
            out.ok, out.detail = False, "old workers still running (a new worker did not become ready?)"
        elif (why := await self._prove(c, deadline)) is not None:
            out.ok, out.detail = False, why
        else:
            st = loaded.record(c, self.layout)
            out.detail = "serving " + ", ".join(
                f"{k} serial {v}" for k, v in (st.serials if st else {}).items()
            )
        out.seconds = round(time.monotonic() - start, 2)
        return out

    async def run(self, consumers: list[Consumer]) -> list[Outcome]:
        return [await self.apply(c) for c in consumers]

    async def converge(self, consumers: list[Consumer]) -> list[Outcome]:
        """`./lab up`: act only where the recorded fingerprint differs from the files (idempotent).

        `reprovision` services were converged by their own role earlier in the same play, so their
        state is only recorded here.
        """
        out: list[Outcome] = []
        for c in consumers:
            if c.action == "none" or loaded.is_current(c, self.layout):
                continue
            if c.action == "reprovision":
                loaded.record(c, self.layout)
                out.append(
                    Outcome(
                        service=c.service,
                        program=c.program,
                        action=c.action,
                        how=c.how,
                        ok=True,
                        detail="converged by its role in this play; recorded",
                    )
                )
                continue
            out.append(await self.apply(c))
        return out
