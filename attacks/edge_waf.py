"""The deployed edge WAF, read and reloaded in place: where its configuration is, what it runs, its audit log.

Shared by `lab attack --edge detection-only` (the CLI's demo switch) and the WAF benchmarks that measure
the deployed edge at another paranoia level; both only read the files the waf role wrote and reload nginx
the way the edge role's handler does, so neither needs the CLI.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from labdef.errors import LabError

NGINX_CONF = Path("/etc/nginx/nginx.conf")
"""edge role default `edge_conf_dir`/nginx.conf: the file the lab's nginx master was started with."""


def waf_conf_dir(lab: Any) -> Path:
    """playbooks/roles/waf/defaults: `waf_conf_dir: {{ lab.paths.etc }}/waf`."""
    return Path(lab.paths.etc) / "waf"


def _nginx(args: list[str]) -> None:
    proc = subprocess.run(["nginx", *args], capture_output=True, text=True, check=False, timeout=60)
    if proc.returncode != 0:
        raise LabError(f"nginx {' '.join(args)} failed: {(proc.stderr or proc.stdout).strip()[-400:]}")


def reload_edge(nginx_conf: Path = NGINX_CONF, settle_s: float = 2.0) -> None:
    """Check, then gracefully reload the edge (the edge role's handler does the same two commands)."""
    _nginx(["-t", "-q", "-c", str(nginx_conf)])
    _nginx(["-s", "reload", "-c", str(nginx_conf)])
    time.sleep(settle_s)  # old workers finish, new ones take the listening sockets


def deployed_setting(conf_dir: Path, directive: str) -> str | None:
    """A directive's value in the deployed modsecurity.conf (re-rendering keeps what was deployed)."""
    for line in (conf_dir / "modsecurity.conf").read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == directive:
            return parts[1]
    return None


def deployed_audit_log(lab: Any) -> Path:
    """The audit log the deployed WAF writes (`SecAuditLog`), else the waf role default
    `waf_audit_log_path` = `{{ lab.paths.logs }}/waf/modsec_audit.json` (attacks.evidence.LogPaths)."""
    from attacks.evidence import LogPaths

    conf = waf_conf_dir(lab)
    deployed = deployed_setting(conf, "SecAuditLog") if (conf / "modsecurity.conf").exists() else None
    default = LogPaths.from_logs_dir(lab.paths.logs).modsec_audit_log
    assert default is not None
    return Path(deployed) if deployed else default


def engine_line(conf_dir: Path) -> str:
    for line in (conf_dir / "modsecurity.conf").read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("SecRuleEngine"):
            return line.strip()
    return ""
