"""Extra reload hooks (`--reload CMD`): commands run after the default reload plan.

The default plan (which service reloads how, proven by a handshake) is pki/services.py and
pki/reloader.py; these hooks are for anything outside it. Background on the graceful ways:

Why a hook and not a restart: every service of the lab can pick up a new certificate gracefully,
so rotation never needs downtime (ASVS 1.9 / short-lived certs are only safe if rotation is cheap):

- nginx: `nginx -s reload` starts new workers with the new certificates; old workers finish their
  open connections and exit.
- PostgreSQL 15: `pg_ctlcluster 15 main reload` (or `SELECT pg_reload_conf()`); SIGHUP re-reads
  ssl_cert_file/ssl_key_file/ssl_crl_file for new connections, existing sessions keep theirs.
- Redis 7: `redis-cli ... CONFIG SET tls-cert-file <same path>` re-creates the TLS context.
- app/worker/others under supervisord: `supervisorctl signal HUP <program>` where the program
  re-reads on HUP (gunicorn-style masters), else a rolling `supervisorctl restart`.
- Prometheus (exporter-toolkit web.yml) re-reads the files on every handshake: nothing to do.

Commands are split with shlex and run without a shell, so a lab.yml value cannot inject shell
syntax (OWASP Top 10 2021 A03). A failing hook is reported, not raised: the certificates are
already in place and the next run retries.
"""

from __future__ import annotations

import asyncio
import shlex

from pydantic import BaseModel


class HookResult(BaseModel):
    command: str
    returncode: int | None
    output: str = ""


async def _run_one(command: str, timeout_s: float) -> HookResult:
    argv = shlex.split(command)
    if not argv:
        return HookResult(command=command, returncode=None, output="empty command")
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
    except OSError as exc:
        return HookResult(command=command, returncode=None, output=str(exc))
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return HookResult(command=command, returncode=None, output=f"timed out after {timeout_s}s")
    return HookResult(
        command=command, returncode=proc.returncode, output=out.decode(errors="replace")[-2000:]
    )


async def run_hooks(commands: list[str], timeout_s: float = 30.0) -> list[HookResult]:
    """Run reload commands one after another (order matters: e.g. app before edge)."""
    return [await _run_one(c, timeout_s) for c in commands]
