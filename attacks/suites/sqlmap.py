"""sqlmap through the target against the message POST (JSON `content`) and the list query (limit,
cursor) (OWASP A03:2021, CWE-89). The verdict of sqlmap is the evidence; what the target answered
(statuses and problem types from sqlmap's traffic file, and through the edge the access log of
sqlmap's user agent) names the layer."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from typing import Any

from attacks import sqlmap_runner
from attacks.classify import Neutralized, Observation
from attacks.evidence import (
    EDGE_OWN_CAUSES,
    LAYER_BY_PROBLEM,
    answered_by_edge,
    parse_access_log,
    parse_modsec_error_log,
)
from attacks.runner import Context, attack

SUITE = "sqlmap"
REFS = ["OWASP-A03:2021", "ASVS-V5.3.4", "CWE-89"]


def probe_user_agent(case_id: str) -> str:
    """A User-Agent that identifies the run in the access log without naming the tool: with "sqlmap" in
    it (sqlmap's default, or a case id), CRS 913100 blocks every request on the name alone and the run
    tests nothing but the User-Agent."""
    return "seclab-probe/" + hashlib.sha256(case_id.encode()).hexdigest()[:12]


def edge_view(ctx: Context, user_agent: str) -> dict[str, Any]:
    """Through the edge: how many of sqlmap's requests the edge answered itself, by status."""
    if ctx.evidence is None or not ctx.target.through_edge:
        return {}
    entries = [e for e in {id(e): e for e in parse_access_log(ctx.evidence.access_log.lines()).values()}.values()
               if e.get("user_agent") == user_agent]
    by_edge = Counter(e["status"] for e in entries if answered_by_edge(e))
    upstream = Counter(e["status"] for e in entries if not answered_by_edge(e))
    rules: Counter[str] = Counter()
    hits_by_tx = parse_modsec_error_log(ctx.evidence.error_log.lines())
    for e in entries:
        if e["status"] == "403" and answered_by_edge(e):
            for rule in {h.id for h in hits_by_tx.get(e.get("nginx_request_id", ""), [])}:
                rules[rule] += 1
    return {"edge_answered": dict(by_edge), "upstream_answered": dict(upstream), "waf_rules": dict(rules.most_common(10))}


def judge(res: sqlmap_runner.SqlmapResult, edge: dict[str, Any], through_edge: bool) -> Observation:
    """Outcome from sqlmap's verdict plus which layer answered most of its requests."""
    notes: dict[str, Any] = {"sqlmap": res.model_dump(exclude={"command"}), "sqlmap_command": res.command}
    if edge:
        notes["edge"] = edge
    first = None  # many responses, no single decisive one: the counts are in the notes
    if res.verdict == "injectable":
        return Observation(effective=True, response=first, notes={**notes, "reason": "sqlmap found an injection"})
    if res.verdict != "not-injectable" or res.requests == 0:
        return Observation(response=first, notes=notes,
                           error=f"sqlmap verdict {res.verdict} after {res.duration_s}s, {res.requests} requests")
    total = sum(res.statuses.values())
    ok = sum(v for k, v in res.statuses.items() if k.startswith("2"))
    refused = {k: v for k, v in res.problems.items() if k in LAYER_BY_PROBLEM}
    if ok * 2 >= total:
        return Observation(response=first, notes=notes, neutralized=Neutralized(layer="data", proof={
            "sqlmap": sqlmap_runner.NOT_INJECTABLE, "accepted": ok, "of": total,
            "why": "most payloads reached the database as bound parameters and changed nothing"}))
    if not refused:
        return Observation(response=first, notes=notes, error="not injectable, but the refusals carry no problem type")
    cause = max(refused, key=lambda k: refused[k])
    layer = LAYER_BY_PROBLEM[cause]
    if through_edge and (cause == "waf-blocked" or cause in EDGE_OWN_CAUSES):
        if not edge:
            return Observation(response=first, notes=notes, error=f"{cause}: no edge access log to tell edge from app")
        by_edge = sum(edge["edge_answered"].values())
        layer = "edge" if by_edge * 2 >= total else layer
    return Observation(response=first, notes=notes, neutralized=Neutralized(layer=layer, proof={
        "sqlmap": sqlmap_runner.NOT_INJECTABLE, "dominant_refusal": cause, "count": refused[cause], "of": total}))


async def _run(ctx: Context, case_id: str, user: str, spec_kw: dict[str, Any]) -> Observation:
    token = await ctx.token(user, fresh=True)
    per_min = int(ctx.lab.limits.rate_limits.per_user_per_minute)
    ua = probe_user_agent(case_id)
    spec = sqlmap_runner.SqlmapSpec(
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"}, user_agent=ua,
        delay_s=float(ctx.options.get("sqlmap_delay_s", round(60.0 / per_min * 1.15, 2))),
        wall_clock_s=float(ctx.options.get("sqlmap_wall_clock_s", 420)), **spec_kw)
    res = await asyncio.to_thread(sqlmap_runner.run, spec)
    return judge(res, edge_view(ctx, ua), ctx.target.through_edge)


@attack("A03-SQLMAP-MSG-01", "sqlmap --level 2 --risk 1 on the message POST JSON body {\"content\": \"*\"}",
        REFS, "data", suite=SUITE)
async def sqlmap_message(ctx: Context) -> Observation:
    # bob, not alice: ~150 accepted messages spend the user's hourly AI token budget (LLM10:2025), and the
    # other suites send alice's messages; sqlmap runs last, so bob's PII cases ran before.
    conv = await ctx.conversation("bob")
    return await _run(ctx, "A03-SQLMAP-MSG-01", "bob", {
        "url": f"{ctx.target.api}/conversations/{conv}/messages", "method": "POST", "data": '{"content": "*"}'})


VALID_CURSOR = "djE6OTk5OTk5"
"""base64url("v1:999999"): a well-formed cursor, so sqlmap starts from a valid request (it warns that
empty values make its comparisons meaningless); `*` marks where the payloads go."""


@attack("A03-SQLMAP-LIST-01", "sqlmap --level 2 --risk 1 on the list query ?limit=*&cursor=*",
        REFS, "edge", suite=SUITE)
async def sqlmap_list(ctx: Context) -> Observation:
    return await _run(ctx, "A03-SQLMAP-LIST-01", "bob",
                      {"url": f"{ctx.target.api}/conversations?limit=10*&cursor={VALID_CURSOR}*"})
