"""One correlation id per request on the live lab: edge access log, ModSecurity logs, app log, response.

Runs against the provisioned lab (https://localhost): needs root (the logs under lab.paths.logs and the
lab users' passwords are root-only). The id is the client's X-Request-ID when it is short and boring,
else nginx's $request_id (edge/nginx.conf.j2 `map`); either way the same string must be found in
every log that saw the request, so one grep follows a request through the stack (ASVS 4.0.3 V7.1.3).
"""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from attacks.evidence import (
    LogTail,
    answered_by_edge,
    parse_access_log,
    parse_app_log,
    parse_modsec_audit_log,
    parse_modsec_error_log,
)
from labdef import load
from tests.conftest import need

pytestmark = pytest.mark.integration

CA = Path("/etc/seclab/pki/ca/ca-bundle.crt")


@pytest.fixture(scope="module")
def live() -> dict[str, Any]:
    lab = load()
    env = Path(lab.paths.etc) / "app.env"
    reason = None
    if not env.is_file() or not CA.is_file():
        reason = f"lab not provisioned ({env} or {CA} missing): run ./lab up"
    elif os.geteuid() != 0:
        reason = "needs root: the lab's logs and user passwords are root-only"
    if reason:
        if os.environ.get("SECLAB_REQUIRE_LAB") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    from seclab.commands.attack import deployed_audit_log

    return {"lab": lab, "logs": Path(lab.paths.logs), "audit": deployed_audit_log(lab)}


@pytest.fixture(scope="module")
def token(live: dict[str, Any]) -> str:
    from labdef.tokens import get_access_token

    return get_access_token(live["lab"], "alice")


class Tails:
    """The four logs, read from where they were before the request."""

    def __init__(self, live: dict[str, Any]) -> None:
        d = live["logs"]
        self.access = LogTail(d / "nginx-access.json")
        self.error = LogTail(d / "nginx-error.log")
        self.audit = LogTail(live["audit"])
        self.app = LogTail(d / "app.log")

    def wait(self, found: Callable[[], Any], timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = found()
            if value or time.monotonic() > deadline:
                return value
            time.sleep(0.2)

    def access_entry(self, rid: str) -> dict[str, Any] | None:
        return self.wait(lambda: parse_access_log(self.access.lines()).get(rid))

    def audit_ids(self) -> set[str]:
        return set(parse_modsec_audit_log(self.audit.lines()))

    def app_entry(self, rid: str) -> dict[str, Any] | None:
        return self.wait(lambda: parse_app_log(self.app.lines()).get(rid))

    def error_rules(self, rid: str) -> set[str]:
        return self.wait(lambda: {h.id for h in parse_modsec_error_log(self.error.lines()).get(rid, [])})


def _post_invalid_message(token: str, headers: dict[str, str]) -> httpx.Response:
    """A message post the WAF passes and the app refuses (422, empty content): logged by the edge, by
    ModSecurity's audit log (SecAuditLogRelevantStatus: 4xx but 404) and by the app."""
    with httpx.Client(verify=ssl.create_default_context(cafile=str(CA)), timeout=20) as c:
        return c.post(f"https://localhost/api/v1/conversations/{uuid.uuid4()}/messages",
                      json={"content": ""},
                      headers={"Authorization": f"Bearer {token}", **headers})


def _assert_one_id(tails: Tails, rid: str, r: httpx.Response) -> None:
    assert r.status_code == 422, r.text
    assert r.headers["x-request-id"] == rid == r.json()["request_id"]
    entry = tails.access_entry(rid)
    assert entry is not None, f"{rid} not in the edge access log"
    assert not answered_by_edge(entry) and entry["upstream_status"] == "422"
    app = tails.app_entry(rid)
    assert app is not None and app["status"] == 422, f"{rid} not in the app log"
    assert tails.wait(lambda: rid in tails.audit_ids()), f"{rid} is not a transaction id in the ModSecurity audit log"


def test_client_request_id_is_the_id_in_access_audit_and_app_logs(live: dict[str, Any], token: str) -> None:
    tails = Tails(live)
    rid = f"corr-{uuid.uuid4().hex[:16]}"
    _assert_one_id(tails, rid, _post_invalid_message(token, {"X-Request-ID": rid}))


def test_edge_generated_request_id_is_the_id_in_every_log(live: dict[str, Any], token: str) -> None:
    tails = Tails(live)
    r = _post_invalid_message(token, {})
    rid = r.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", rid)
    _assert_one_id(tails, rid, r)


def test_unsafe_client_request_id_is_replaced_not_logged(live: dict[str, Any], token: str) -> None:
    tails = Tails(live)
    bad = "x" * 200  # too long for the map: replaced by nginx's own id
    r = _post_invalid_message(token, {"X-Request-ID": bad})
    rid = r.headers["x-request-id"]
    assert rid != bad
    _assert_one_id(tails, rid, r)
    assert bad not in "".join(tails.access.lines()) and bad not in "".join(tails.app.lines())


def test_waf_block_has_the_client_id_in_body_access_and_error_log(live: dict[str, Any]) -> None:
    tails = Tails(live)
    rid = f"corr-block-{uuid.uuid4().hex[:12]}"
    with httpx.Client(verify=ssl.create_default_context(cafile=str(CA)), timeout=20) as c:
        r = c.get("https://localhost/api/v1/conversations", params={"q": "1' OR '1'='1' UNION SELECT password FROM users--"},
                  headers={"X-Request-ID": rid})
    assert r.status_code == 403 and r.json()["type"] == "urn:seclab:problem:waf-blocked"
    assert r.headers["x-request-id"] == rid == r.json()["request_id"]
    entry = tails.access_entry(rid)
    assert entry is not None and answered_by_edge(entry) and entry["status"] == "403"
    assert "949110" in tails.error_rules(rid), "the block's rule ids are not logged under the request id"
    assert rid not in parse_app_log(tails.app.lines())  # never reached the app


def test_log_rotation_is_configured_for_the_three_logs(live: dict[str, Any]) -> None:
    logs: Path = live["logs"]
    edge = Path("/etc/logrotate.d/seclab-edge").read_text()
    waf = Path("/etc/logrotate.d/seclab-waf").read_text()
    assert f"{logs}/nginx-access.json" in edge and f"{logs}/nginx-error.log" in edge and "kill -USR1" in edge
    assert f"{live['audit']} {{" in waf and "copytruncate" in waf
    for conf in ("/etc/logrotate.d/seclab-edge", "/etc/logrotate.d/seclab-waf"):
        check = subprocess.run(["logrotate", "-d", conf], capture_output=True, text=True, timeout=60, check=False)
        assert check.returncode == 0, check.stderr[-1000:]
    # The app's log: supervisord rotates what it captures (process role: process_log_maxbytes/backups).
    program = Path("/etc/supervisor/conf.d/app.conf")
    need(program.exists(), "the app under supervisord (this check reads its program file)")
    text = program.read_text()
    assert f"stdout_logfile={logs}/app.log" in text
    size = re.search(r"^stdout_logfile_maxbytes=(\d+)\s*(KB|MB|GB)?$", text, re.MULTILINE)
    backups = re.search(r"^stdout_logfile_backups=(\d+)$", text, re.MULTILINE)
    assert size and int(size.group(1)) > 0 and backups and int(backups.group(1)) > 0
