"""The testssl.sh summariser (benchmarks/tls/testssl.py) on canned findings; the live scan is a benchmark."""

from __future__ import annotations

from benchmarks.tls.testssl import ACCEPTED, load_findings, summarise

FINDINGS = [
    {"id": "TLS1_1", "severity": "OK", "finding": "not offered"},
    {"id": "TLS1_3", "severity": "OK", "finding": "offered with final"},
    {"id": "cipher_order", "severity": "HIGH", "finding": "NOT a cipher order configured"},
    {"id": "BREACH", "severity": "MEDIUM", "finding": "potentially VULNERABLE"},
    {"id": "DNS_CAArecord", "severity": "LOW", "finding": "--"},
    {"id": "HSTS", "severity": "OK", "finding": "730 days"},
]


def test_counts_and_notable_findings() -> None:
    s = summarise(FINDINGS, "localhost:443", ACCEPTED)
    assert s["counts"] == {"HIGH": 1, "MEDIUM": 1, "LOW": 1, "OK": 3}
    ids = [f["id"] for f in s["medium_or_above"]]
    assert ids == ["cipher_order", "BREACH"]  # most severe first
    assert "accepted_because" in s["medium_or_above"][0]
    assert "accepted_because" not in s["medium_or_above"][1]
    assert s["highlights"]["TLS1_1"] == "not offered"


def test_unterminated_json_of_a_cut_scan_still_loads() -> None:
    text = '[{"id": "TLS1_2", "severity": "OK", "finding": "offered"},\n{"id": "TLS1_3", "sev'
    assert [f["id"] for f in load_findings(text)] == ["TLS1_2"]
