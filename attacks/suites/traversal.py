"""Path traversal and local file inclusion (OWASP A01:2021 broken access control / A05), and reaching
what must stay internal (`/metrics`, hidden files) through the edge."""

from __future__ import annotations

import httpx

from attacks.classify import Observation
from attacks.runner import Context, attack, facts
from attacks.suites._common import query_payload, title_payload

SUITE = "traversal"
FILE_MARKERS = ("root:x:0:0", "[boot loader]", "BEGIN RSA PRIVATE KEY", "BEGIN PRIVATE KEY")


async def _raw_get(ctx: Context, raw_path: str, user: str | None = "alice") -> Observation:
    """GET with the path sent as written (no client-side dot-segment removal)."""
    url = httpx.URL(ctx.target.base_url).copy_with(raw_path=raw_path.encode("ascii"))
    headers = await ctx.auth(user) if user else {}
    r = await ctx.client.get(url, headers=headers)
    f = facts(r, r.elapsed.total_seconds())
    if any(m in r.text for m in FILE_MARKERS):
        return Observation(effective=True, response=f, notes={"reason": "file content in the answer"})
    return Observation(response=f)


@attack("A01-TRAV-PATH-01", "Encoded ../ in the conversation id (..%2f..%2fetc%2fpasswd)",
        ["OWASP-A01:2021", "ASVS-V12.3.1", "CWE-22"], "edge", suite=SUITE)
async def trav_encoded(ctx: Context) -> Observation:
    return await _raw_get(ctx, "/api/v1/conversations/..%2f..%2f..%2f..%2fetc%2fpasswd/messages")


@attack("A01-TRAV-PATH-02", "Dot-segment traversal out of /api/ (/api/v1/%2e%2e/%2e%2e/etc/passwd)",
        ["OWASP-A01:2021", "ASVS-V12.3.1", "CWE-22"], "edge", suite=SUITE)
async def trav_dots(ctx: Context) -> Observation:
    return await _raw_get(ctx, "/api/v1/%2e%2e/%2e%2e/%2e%2e/etc/passwd")


@attack("A05-LFI-QUERY-01", "LFI path in ?cursor=",
        ["OWASP-A05:2021", "ASVS-V12.3.1", "CWE-22"], "edge", suite=SUITE)
async def lfi_query(ctx: Context) -> Observation:
    return await query_payload(ctx, "alice", {"cursor": "../../../../etc/passwd"})


@attack("A05-LFI-TITLE-01", "OS file path in the conversation title",
        ["OWASP-A05:2021", "ASVS-V12.3.1", "CWE-22"], "edge", suite=SUITE)
async def lfi_title(ctx: Context) -> Observation:
    return await title_payload(ctx, "alice", "../../../../etc/shadow", FILE_MARKERS)


@attack("A05-METRICS-01", "Read /metrics through the edge (internal only)",
        ["OWASP-A05:2021", "API9:2023", "ASVS-V14.3.3"], "edge", suite=SUITE, requires_edge=True)
async def metrics(ctx: Context) -> Observation:
    r, f = await ctx.request("GET", "//metrics")
    if r.status_code == 200 and "# HELP" in r.text:
        return Observation(effective=True, response=f, notes={"reason": "Prometheus metrics served to the outside"})
    return Observation(response=f)
