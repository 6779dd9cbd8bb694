"""The pieces that make the runners usable against the lab's edge: verdicts, request rewriting, pacing.

Pure functions and a local instance only; the live edge itself is measured by the runners and its
correlation id is tested in tests/edge/test_live_correlation.py.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.waf.common import Target, rule_file
from benchmarks.waf.crs_regression import mount, with_request_id
from benchmarks.waf.live import Pacer, deployed_level, verdict

EDGE_OWN = {"upstream_status": "", "status": "429"}
UPSTREAM = {"upstream_status": "404", "status": "404"}


@pytest.mark.parametrize(
    "status,problem,access,local,expected",
    [
        (403, "waf-blocked", None, False, "waf-blocked"),
        (403, "forbidden", UPSTREAM | {"upstream_status": "403"}, False, "passed"),  # the app's own 403
        (404, "not-found", UPSTREAM, False, "passed"),  # the app answered: the WAF let it through
        (429, "rate-limited", EDGE_OWN, False, "edge-rate-limited"),  # limit_req: no verdict, retried
        (429, "rate-limited", UPSTREAM | {"upstream_status": "429"}, False, "passed"),  # the app's limit
        (404, "not-found", {"upstream_status": "-"}, False, "edge-refused"),
        (413, "payload-too-large", None, True, "edge-refused"),
        (200, None, None, True, "passed"),
        (0, None, None, True, "no-answer"),
        (-1, None, None, True, "not-sent"),
        (404, None, None, False, "unknown"),  # edge whose access log could not be read: not guessed
    ],
)
def test_verdict(status: int, problem: str | None, access: dict[str, Any] | None, local: bool, expected: str) -> None:
    assert verdict(status, problem, access, local) == expected


def test_refusal_without_its_id_in_a_readable_access_log_is_the_edges_own() -> None:
    """nginx never parsed the X-Request-ID of a request line it refused (400/505): no entry under the id."""
    assert verdict(400, "validation", None, False, logged=True) == "edge-refused"
    assert verdict(505, None, None, False, logged=True) == "edge-refused"
    assert verdict(200, None, None, False, logged=True) == "unknown"


def test_mount_reroots_origin_form_targets_only() -> None:
    req = b"POST /index.php?a=1 HTTP/1.1\r\nHost: localhost\r\n\r\nx=1"
    assert mount(req, "/api/v1/crs-regression") == (
        b"POST /api/v1/crs-regression/index.php?a=1 HTTP/1.1\r\nHost: localhost\r\n\r\nx=1")
    for odd in (b"GET http://evil/ HTTP/1.1\r\n\r\n", b"GET * HTTP/1.1\r\n\r\n", b"garbage", b"GET /\r\n"):
        assert mount(odd, "/api/v1/x") == odd
    assert mount(req, "") == req


def test_request_id_goes_after_the_request_line() -> None:
    out = with_request_id(b"GET / HTTP/1.1\nHost: a\n\n", "wafbench-1234-x")
    assert out == b"GET / HTTP/1.1\nX-Request-ID: wafbench-1234-x\r\nHost: a\n\n"
    assert with_request_id(b"no line end", "wafbench-1234-x") == b"no line end"


def test_rule_files() -> None:
    assert rule_file("942100") == "REQUEST-942-APPLICATION-ATTACK-SQLI"
    assert rule_file("200002").startswith("modsecurity.conf")
    assert rule_file("948110") == "REQUEST-948-SECLAB-MESSAGE-FIELD"


def test_pacer_spaces_request_starts() -> None:
    async def go() -> float:
        pacer = Pacer(20.0)
        t0 = time.monotonic()
        await asyncio.gather(*(pacer.wait() for _ in range(11)))
        return time.monotonic() - t0

    assert 0.45 <= asyncio.run(go()) < 1.5  # 11 starts at 20/s: the last one 0.5 s after the first


def test_deployed_level_reads_crs_setup(tmp_path: Path) -> None:
    (tmp_path / "crs-setup.conf").write_text('SecAction "id:900000,phase:1,nolog,pass,t:none,\\\n'
                                             '    setvar:tx.paranoia_level=1"\n')
    assert deployed_level(tmp_path) == 1
    assert deployed_level(tmp_path / "missing") is None


def test_client_request_id_is_the_waf_transaction_id(waf: Any) -> None:
    """One id: the client's X-Request-ID is the header, the problem body's id and [unique_id] in the log."""
    from attacks.evidence import parse_modsec_error_log

    inst = waf(False, 2)
    rid = "corr-local-0001-abcdef"
    r = httpx.get(inst.base_url + "/api/v1/conversations", params={"q": "1' OR '1'='1"},
                  headers={"X-Request-ID": rid, "Host": "localhost"})
    assert r.status_code == 403
    assert r.headers["x-request-id"] == rid == r.json()["request_id"]
    time.sleep(0.2)
    hits = parse_modsec_error_log((inst.prefix / "logs" / "error.log").read_text(errors="replace").splitlines())
    assert {h.id for h in hits.get(rid, [])} >= {"949110"}, sorted(hits)[-5:]


def test_unsafe_client_request_id_is_replaced_everywhere(waf: Any) -> None:
    inst = waf(False, 2)
    r = httpx.get(inst.base_url + "/api/v1/conversations", params={"q": "1' OR '1'='1"},
                  headers={"X-Request-ID": "short", "Host": "localhost"})
    assert r.status_code == 403
    rid = r.headers["x-request-id"]
    assert rid != "short" and len(rid) == 32 and r.json()["request_id"] == rid


def test_summaries_count_outcomes_not_statuses() -> None:
    """An app 404 behind the edge is a pass, an edge 429 neither a pass nor a block (falsepositives.summarize)."""
    from benchmarks.waf.common import Outcome
    from benchmarks.waf.falsepositives import summarize

    prompts = [{"text": f"p{i}", "code": i == 0} for i in range(5)]
    outs = [Outcome("waf-blocked", 403, "a", ["942100", "949110"]), Outcome("passed", 404, "b"),
            Outcome("passed", 429, "c"), Outcome("edge-rate-limited", 429, "d", attempts=4),
            Outcome("edge-refused", 413, "e")]
    s = summarize(Target("edge", None, 2, "https://localhost", kind="edge"), prompts, outs, 1.0)
    assert s["all"]["measured"] == 3 and s["all"]["blocked_403"] == 1 and s["all"]["too_large_413"] == 1
    assert s["all"]["other"] == {"edge-rate-limited": 1} and s["retried_429"] == 3
    assert s["rules_in_blocks"] == {"942100": 1}
    assert s["rule_files_in_blocks"] == {"REQUEST-942-APPLICATION-ATTACK-SQLI": 1}
    assert s["code_heavy"]["block_rate"] == 1.0


def test_lock_held_by_a_parent_process_is_not_taken_again(tmp_path: Path) -> None:
    """Under `flock LOCK <runner>` the runner must not wait for its own parent."""
    import subprocess
    import sys

    lock = tmp_path / "up.lock"
    lock.touch()
    repo = str(Path(__file__).resolve().parents[2])
    code = (f"import sys; sys.path.insert(0, {repo!r}); from benchmarks.waf.live import held_by_ancestor, "
            f"provisioning_lock; print(held_by_ancestor({str(lock)!r}));\n"
            f"with provisioning_lock({str(lock)!r}): print('in')")
    under = subprocess.run(["flock", str(lock), sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=30, check=False)
    assert under.stdout.split() == ["True", "in"], under.stderr[-500:]
    free = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False)
    assert free.stdout.split() == ["False", "in"], free.stderr[-500:]
