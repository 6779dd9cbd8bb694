"""Live fault test: the engine stops, the lab keeps logging, nothing is lost when it returns.

The shipper's disk-assisted queue holds the events while the engine is down (rsyslog: action retries
forever, queue spills to disk); this counts the events sent while down and finds every one after.
"""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from labdef import LabDefinition
from logsearch.client import GatewaySettings, ssl_context

from .live_support import edge_client, live_lab, program, request_ids_with_prefix

pytestmark = [pytest.mark.integration, pytest.mark.late]

SENT_WHILE_DOWN = 60


def _engine_answers(lab: LabDefinition) -> bool:
    s = GatewaySettings.from_lab(lab)
    try:
        with httpx.Client(verify=ssl_context(s), timeout=5) as c:
            return c.get(f"{s.url}/_cluster/health").status_code == 200
    except httpx.HTTPError:
        return False


def test_nothing_is_lost_while_the_engine_is_down() -> None:
    lab = live_lab()
    run = uuid.uuid4().hex[:12]
    sent: list[str] = []
    program("stop", "logsearch")
    try:
        assert not _engine_answers(lab), "the engine still answers after it was stopped"
        with edge_client(lab) as c:
            for i in range(SENT_WHILE_DOWN):
                rid = f"fault-{run}-{i:04d}"
                assert c.get("/healthz", headers={"X-Request-ID": rid}).status_code == 200
                sent.append(rid)
        time.sleep(5)  # the shipper reads them and fails to deliver: they wait in its queue
    finally:
        program("start", "logsearch")
    deadline = time.monotonic() + 240
    found: set[str] = set()
    docs = 0
    while time.monotonic() < deadline:
        if _engine_answers(lab):
            try:
                ids = request_ids_with_prefix(lab, "nginx.access", f"fault-{run}-")
            except httpx.HTTPStatusError:  # shards still recovering after the restart (503)
                time.sleep(2)
                continue
            docs = len(ids)
            found = set(ids)
            if found >= set(sent):
                break
        time.sleep(2)
    print(f"fault test: sent while down {len(sent)}, found after {len(found)} distinct ({docs} documents)")
    assert set(sent) - found == set(), f"lost {len(set(sent) - found)} of {len(sent)} events"
