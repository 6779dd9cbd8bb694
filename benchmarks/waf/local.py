"""Throw-away nginx + ModSecurity instances on 127.0.0.1 for the WAF runners and tests.

Why a local instance: the false-positive and regression numbers must be measurable on any Debian host
with the packages installed, without the lab's edge (and against the real edge with --base-url later).
Each instance runs `nginx -p <tmp prefix> -c nginx.conf -g 'daemon off;'` with one worker, proxies to a
backend server block in the same nginx (on a unix socket) that answers 200, and includes the same
problem-pages snippet the edge includes, with the edge's own request-id `map` (read from
edge/nginx.conf.j2, so a client X-Request-ID is the transaction id here exactly as on the edge).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # waf_rules is a top-level directory of the repository
    sys.path.insert(0, str(REPO))

from waf_rules.render import MODSEC_MODULE, render

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PORT_RANGE = range(18080, 18100)
EDGE_TEMPLATE = REPO / "edge" / "nginx.conf.j2"
_REQUEST_ID_MAP = re.compile(r"^[ \t]*map \$http_x_request_id \$edge_request_id \{.*?^[ \t]*\}[ \t]*$", re.MULTILINE | re.DOTALL)


def request_id_map(template: Path = EDGE_TEMPLATE) -> str:
    """The edge's `map $http_x_request_id $edge_request_id {...}` block, verbatim (one copy of the rule)."""
    m = _REQUEST_ID_MAP.search(template.read_text(encoding="utf-8"))
    if not m or "{{" in m.group(0) or "{%" in m.group(0):
        raise RuntimeError(f"no plain `map $http_x_request_id $edge_request_id` block in {template}")
    return m.group(0)


NGINX_CONF = """\
# Rendered by benchmarks/waf/local.py: a throw-away WAF instance ({name}).
load_module {module};
{user_line}
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    server_tokens off;
{request_id_map}
    server {{
        listen 127.0.0.1:{port} default_server;
        server_name localhost;
        # Same limit as the edge (lab.yml limits.body_max_bytes): larger bodies are a 413 before the WAF.
        client_max_body_size {body_max};
        client_body_buffer_size {body_max};
        modsecurity on;
        modsecurity_rules_file {main_conf};
        # Server-level headers, inherited by the WAF's problem page (as on the lab edge).
        add_header X-Request-Id $edge_request_id always;
        add_header Cache-Control "no-store" always;
        include {waf_dir}/nginx/problem-pages.conf;
        location / {{
            proxy_pass http://unix:{prefix}/backend.sock;
            proxy_set_header Host $host;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
    upstream_stub {{}}
}}
"""
# The backend answers every request with 200; it is a separate server so the WAF sees the full body.
BACKEND = """\
    server {{
        listen unix:{prefix}/backend.sock;
        modsecurity off;
        client_max_body_size 0;
        location / {{
            default_type application/json;
            return 200 '{{"ok":true}}\\n';
        }}
    }}
"""


@dataclass
class WafInstance:
    """One running nginx + ModSecurity instance."""

    name: str
    prefix: Path
    port: int
    stock: bool
    paranoia_level: int
    proc: subprocess.Popen[bytes]
    audit_log: Path
    keep: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        """Worker processes: children of the master (the master itself does not serve requests)."""
        pids: list[int] = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == self.proc.pid:
                pids.append(int(entry.name))
        return pids

    def audit_entries(self) -> Iterator[dict[str, Any]]:
        """The JSON audit log, one transaction per line (SecAuditLogFormat JSON, Serial)."""
        if not self.audit_log.exists():
            return
        for line in self.audit_log.read_text(encoding="utf-8", errors="replace").splitlines():
            line = line.strip()
            if line:
                try:
                    yield json.loads(line)
                except ValueError:
                    continue

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: nginx fast shutdown of this master and its workers
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if not self.keep:
            shutil.rmtree(self.prefix, ignore_errors=True)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(exclude: set[int] | None = None) -> int:
    for port in PORT_RANGE:
        if port not in (exclude or set()) and _port_free(port):
            return port
    raise RuntimeError(f"no free port in {PORT_RANGE.start}-{PORT_RANGE.stop - 1}")


_used_ports: set[int] = set()


def start_instance(
    lab: Any,
    name: str,
    stock: bool,
    paranoia_level: int | None = None,
    mode: str | None = None,
    port: int | None = None,
    keep: bool = False,
) -> WafInstance:
    """Render the WAF config (stock or tuned) into a temp prefix and start nginx on a free loopback port."""
    from labdef import LabDefinition

    prefix = Path(tempfile.mkdtemp(prefix=f"seclab-waf-{name}-"))
    for sub in ("logs", "tmp", "waf"):
        (prefix / sub).mkdir()
    audit_log = prefix / "logs" / "modsec_audit.json"
    main_conf = render(
        lab, prefix / "waf", audit_log, mode_override=mode, stock=stock,  # type: ignore[arg-type]
        paranoia_override=paranoia_level, tmp_dir=str(prefix / "tmp"),
    )
    d = lab.model_dump(mode="json") if isinstance(lab, LabDefinition) else lab
    level = paranoia_level or d["edge"]["waf"]["paranoia_level"]
    user_line = ""
    if os.geteuid() == 0:
        # Workers drop to nobody; they need the temp dirs and the audit log.
        nobody = pwd.getpwnam("nobody")
        user_line = "user nobody nogroup;"
        prefix.chmod(0o755)
        for sub in ("logs", "tmp"):
            os.chown(prefix / sub, nobody.pw_uid, nobody.pw_gid)
        audit_log.touch()
        os.chown(audit_log, nobody.pw_uid, nobody.pw_gid)
    port = port or free_port(_used_ports)
    _used_ports.add(port)
    conf = NGINX_CONF.format(
        name=name, module=MODSEC_MODULE, user_line=user_line, prefix=prefix, port=port,
        body_max=d["limits"]["body_max_bytes"], main_conf=main_conf, waf_dir=prefix / "waf",
        request_id_map=request_id_map(),
    ).replace("    upstream_stub {}\n", BACKEND.format(prefix=prefix))
    (prefix / "nginx.conf").write_text(conf)
    test = subprocess.run([NGINX, "-t", "-q", "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
                          capture_output=True, text=True, check=False)
    if test.returncode != 0:
        raise RuntimeError(f"nginx -t failed for {name}: {test.stderr.strip()}")
    proc = subprocess.Popen(
        [NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    inst = WafInstance(name, prefix, port, stock, int(level), proc, audit_log, keep)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"nginx {name} exited: {err.strip()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return inst
        except OSError:
            time.sleep(0.1)
    inst.stop()
    raise RuntimeError(f"nginx {name} did not listen on {port}")


def nginx_test_config(main_conf: Path, problem_pages: Path) -> subprocess.CompletedProcess[str]:
    """`nginx -t` on a minimal config that loads the given rules (syntax check of a rendered config)."""
    prefix = Path(tempfile.mkdtemp(prefix="seclab-waf-t-"))
    try:
        (prefix / "logs").mkdir()
        conf = prefix / "nginx.conf"
        conf.write_text(
            f"load_module {MODSEC_MODULE};\npid {prefix}/nginx.pid;\nerror_log {prefix}/logs/error.log;\n"
            "events {}\nhttp {\n  access_log off;\n  client_body_temp_path " + str(prefix) + "/body;\n"
            + request_id_map() + "\n"
            f"  server {{\n    listen 127.0.0.1:18099;\n    modsecurity on;\n"
            f"    modsecurity_rules_file {main_conf};\n    include {problem_pages};\n"
            "    location / { return 204; }\n  }\n}\n"
        )
        return subprocess.run([NGINX, "-t", "-p", str(prefix), "-c", str(conf)], capture_output=True, text=True, check=False)
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


_LOG_ID = re.compile(r'\[id "(\d+)"\]')
_LOG_UID = re.compile(r'\[unique_id "([^"]+)"\]')


def rule_ids_by_request(inst: WafInstance) -> dict[str, list[str]]:
    """Matched rule ids per transaction id (= $edge_request_id, see nginx/problem-pages.conf) from error_log."""
    out: dict[str, list[str]] = {}
    log = inst.prefix / "logs" / "error.log"
    if not log.exists():
        return out
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if "ModSecurity:" not in line:
            continue
        rid, uid = _LOG_ID.search(line), _LOG_UID.search(line)
        if rid and uid:
            out.setdefault(uid.group(1), []).append(rid.group(1))
    return out
