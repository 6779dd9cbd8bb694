"""Live: the lab-admin events view - through the edge, the API searches the log engine with its
search-only certificate and returns a WAF-blocked request's events from every service, oldest first;
the gateway refuses that certificate anything but a search of the lab's indices.

Runs against the provisioned lab (./lab up) as root; under SECLAB_REQUIRE_LAB=1 a missing part fails.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime

import httpx
import pytest

from labdef import LabDefinition
from labdef.tokens import get_access_token
from logsearch.client import GatewaySettings, ssl_context

from .live_support import edge_client, live_lab, wait_for_datasets

pytestmark = pytest.mark.integration


def test_lab_admin_sees_a_blocked_requests_events_through_the_api() -> None:
    lab: LabDefinition = live_lab()
    rid = f"logs-admin-{uuid.uuid4().hex[:16]}"
    admin = {"Authorization": f"Bearer {get_access_token(lab, 'admin')}"}
    with edge_client(lab) as c:
        blocked = c.get("/api/v1/conversations", params={"q": "1' UNION SELECT password FROM users--"},
                        headers={"X-Request-ID": rid})
        assert blocked.status_code == 403, blocked.text
        wait_for_datasets(lab, rid, {"nginx.access", "nginx.error"})
        deadline, items = time.monotonic() + 30, []
        while time.monotonic() < deadline:
            r = c.get("/api/v1/admin/request-events", params={"request_id": rid}, headers=admin)
            assert r.status_code == 200, r.text
            items = r.json()["items"]
            if {"nginx.access", "nginx.error"} <= {i["dataset"] for i in items}:
                break
            time.sleep(1)
        assert {"nginx.access", "nginx.error"} <= {i["dataset"] for i in items}, items
        # Oldest first (the sources write the same instant in different ISO 8601 spellings: compare instants).
        stamps = [datetime.fromisoformat(i["ts"]) for i in items]
        assert stamps == sorted(stamps)
        bad = c.get("/api/v1/admin/request-events", params={"request_id": "x;y"}, headers=admin)
        assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
        alice = {"Authorization": f"Bearer {get_access_token(lab, 'alice')}"}
        assert c.get("/api/v1/admin/request-events", params={"request_id": rid}, headers=alice).status_code == 403


def test_the_search_certificate_can_only_search_the_lab_indices() -> None:
    lab = live_lab()
    app_cert = GatewaySettings.from_lab(lab, client="log-search")
    prefix = app_cert.index_prefix
    with httpx.Client(base_url=app_cert.url, verify=ssl_context(app_cert), timeout=10) as c:
        assert c.post(f"/{prefix}-*/_search", json={"size": 0}).status_code == 200
        for method, path in (("GET", "/_cluster/health"), ("GET", "/_cat/indices"),
                             ("DELETE", f"/{prefix}-probe-2000.01.01"), ("PUT", f"/{prefix}-x-2000.01.01/_doc/1"),
                             ("POST", f"/{prefix}-*/_delete_by_query"), ("DELETE", f"/{prefix}-*/_search"),
                             ("POST", f"/{prefix}-x,.kibana/_search")):
            r = c.request(method, path, json={"query": {"match_all": {}}})
            assert r.status_code == 403, (method, path, r.status_code)
