"""The alert receiver: an Alertmanager-shaped POST becomes JSON lines in the file; bad input is refused."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from monitoring import webhook_receiver

PAYLOAD = {
    "version": "4",
    "groupKey": '{}:{alertname="SeclabWafBlockSpike"}',
    "status": "firing",
    "receiver": "lab-webhook",
    "groupLabels": {"alertname": "SeclabWafBlockSpike"},
    "commonLabels": {"alertname": "SeclabWafBlockSpike", "severity": "warning"},
    "commonAnnotations": {},
    "externalURL": "http://127.0.0.1:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "SeclabWafBlockSpike", "severity": "warning", "layer": "edge"},
            "annotations": {"summary": "WAF block spike at the edge\nINJECTED LINE", "reference": "A09"},
            "startsAt": "2026-11-21T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://127.0.0.1:9090/graph",
            "fingerprint": "abc123",
        },
        {
            "status": "resolved",
            "labels": {"alertname": "SeclabTargetDown", "severity": "critical", "job": "node"},
            "annotations": {"summary": "down"},
            "startsAt": "2026-11-21T09:00:00Z",
            "endsAt": "2026-11-21T09:30:00Z",
            "fingerprint": "def456",
        },
    ],
}


@pytest.fixture()
def receiver(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    out = tmp_path / "alerts" / "alerts.jsonl"
    server = webhook_receiver.make_server("127.0.0.1:0", out, max_bytes=4096)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    host_text = host.decode() if isinstance(host, bytes) else host
    try:
        yield f"http://{host_text}:{port}", out
    finally:
        server.shutdown()
        server.server_close()


def test_alerts_become_json_lines(receiver: tuple[str, Path]) -> None:
    url, out = receiver
    r = httpx.post(f"{url}/alerts", json=PAYLOAD)
    assert r.status_code == 200 and r.json() == {"written": 2}
    lines = out.read_text().splitlines()
    assert len(lines) == 2  # the newline inside the summary did not split a record
    first, second = (json.loads(line) for line in lines)
    assert first["alertname"] == "SeclabWafBlockSpike" and first["status"] == "firing"
    assert first["labels"]["layer"] == "edge" and first["receiver"] == "lab-webhook"
    assert first["annotations"]["summary"].endswith("INJECTED LINE")
    assert second["alertname"] == "SeclabTargetDown" and second["status"] == "resolved"
    assert out.stat().st_mode & 0o777 == 0o640
    # appends, never truncates
    httpx.post(f"{url}/", json=PAYLOAD)
    assert len(out.read_text().splitlines()) == 4


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"content": b"{}", "headers": {"Content-Type": "text/plain"}}, 415),
        ({"content": b"not json", "headers": {"Content-Type": "application/json"}}, 400),
        ({"json": {"alerts": "nope"}}, 400),
        ({"json": {"alerts": [{"labels": "x"}]}}, 400),
        ({"json": {"alerts": [], "pad": "x" * 5000}}, 413),
    ],
)
def test_bad_input_is_refused_and_nothing_written(
    receiver: tuple[str, Path], kwargs: dict, status: int
) -> None:
    url, out = receiver
    assert httpx.post(f"{url}/alerts", **kwargs).status_code == status
    assert out.read_text() == ""


def test_health_and_unknown_paths(receiver: tuple[str, Path]) -> None:
    url, _ = receiver
    r = httpx.get(f"{url}/healthz")
    assert r.status_code == 200 and "Python" not in r.headers.get("server", "")
    assert httpx.post(f"{url}/elsewhere", json=PAYLOAD).status_code == 404


def test_refuses_a_non_loopback_address(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="loopback only"):
        webhook_receiver.make_server("0.0.0.0:0", tmp_path / "a.jsonl")
