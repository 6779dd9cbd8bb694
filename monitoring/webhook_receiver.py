"""A tiny Alertmanager webhook receiver: every alert becomes one JSON line in a file.

Why: Alertmanager has no "file" receiver, and the lab needs its alerts somewhere a test, `lab report`
and a student can read them (OWASP Top 10 2021 A09: alerts must reach someone; ASVS 4.0.3 V7.1).

    python3 monitoring/webhook_receiver.py --listen 127.0.0.1:9095 --file /var/log/seclab/alerts.jsonl

Standard library only (it runs under the host's /usr/bin/python3, Python 3.11+). Defensive by
design, because anything on the host can reach a loopback port:
  - binds loopback unless --allow-remote is given (DevSec baseline: listen only where needed);
  - accepts only POST of application/json up to --max-bytes (ASVS 4.0.3 V13.1.3 size limits);
  - writes the alert's fields as data, never formats them into anything (no log injection:
    json.dumps escapes newlines, ASVS 4.0.3 V7.3.1);
  - the file is created 0640, append-only writes under a lock.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

DEFAULT_LISTEN = "127.0.0.1:9095"
DEFAULT_MAX_BYTES = 1024 * 1024
PATHS = ("/", "/alerts")
KEPT_FIELDS = ("status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint")


class AlertLog:
    """Appends JSON lines to one file; thread-safe, the file is created with mode 0640."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        os.close(fd)

    def write(self, records: list[dict[str, Any]]) -> None:
        lines = "".join(json.dumps(r, sort_keys=True, ensure_ascii=True) + "\n" for r in records)
        with self._lock, open(self.path, "a", encoding="utf-8") as fh:
            fh.write(lines)
            fh.flush()
            os.fsync(fh.fileno())


def records_from(payload: Any, received_at: str) -> list[dict[str, Any]]:
    """One record per alert of an Alertmanager webhook payload (version 4); ValueError if malformed."""
    if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
        raise ValueError("expected an Alertmanager webhook payload with an 'alerts' list")  # noqa: TRY004 (400, not a bug)
    out: list[dict[str, Any]] = []
    for alert in payload["alerts"]:
        if not isinstance(alert, dict) or not isinstance(alert.get("labels", {}), dict):
            raise ValueError("every alert must be an object with a 'labels' object")  # noqa: TRY004
        record = {k: alert[k] for k in KEPT_FIELDS if k in alert}
        record["alertname"] = alert.get("labels", {}).get("alertname")
        record["receiver"] = payload.get("receiver")
        record["group_status"] = payload.get("status")
        record["received_at"] = received_at
        out.append(record)
    return out


def make_handler(log: AlertLog, max_bytes: int) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "seclab-alert-receiver"
        sys_version = ""  # no Python version banner (ASVS 4.0.3 V14.3.3)

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._reply(200, {"status": "ok"})
            else:
                self._reply(404, {"error": "not found"})

        def do_POST(self) -> None:
            if self.path not in PATHS:
                self._reply(404, {"error": "not found"})
                return
            if self.headers.get_content_type() != "application/json":
                self._reply(415, {"error": "application/json expected"})
                return
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self._reply(411, {"error": "Content-Length required"})
                return
            if length < 0 or length > max_bytes:
                self._reply(413, {"error": f"body larger than {max_bytes} bytes"})
                return
            try:
                payload = json.loads(self.rfile.read(length))
                records = records_from(payload, datetime.now(UTC).isoformat())
            except (ValueError, UnicodeDecodeError) as exc:
                self._reply(400, {"error": str(exc)[:200]})
                return
            log.write(records)
            self._reply(200, {"written": len(records)})

        def log_message(self, format: str, *args: Any) -> None:
            # One line per request on stderr (the process manager keeps it); no bodies, no headers.
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    return Handler


def parse_listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_server(
    listen: str, file: Path, max_bytes: int = DEFAULT_MAX_BYTES, allow_remote: bool = False
) -> ThreadingHTTPServer:
    host, port = parse_listen(listen)
    if not allow_remote and not is_loopback(host):
        raise SystemExit(f"refusing to listen on {host}: loopback only unless --allow-remote")
    server = ThreadingHTTPServer((host, port), make_handler(AlertLog(file), max_bytes))
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default=DEFAULT_LISTEN, help="host:port (default %(default)s, loopback)")
    parser.add_argument(
        "--file", required=True, type=Path, help="append one JSON line per alert to this file"
    )
    parser.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES, help="largest accepted body")
    parser.add_argument("--allow-remote", action="store_true", help="allow a non-loopback listen address")
    args = parser.parse_args(argv)
    server = make_server(args.listen, args.file, args.max_bytes, args.allow_remote)
    host, port = server.server_address[:2]
    host_text = host.decode() if isinstance(host, bytes) else host
    sys.stderr.write(f"alert receiver on {host_text}:{port}, writing {args.file}\n")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
