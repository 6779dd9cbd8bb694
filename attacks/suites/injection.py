"""SQL injection (OWASP A03:2021) in every input class of the API: query, path, JSON fields, chat text.

The chat message field is deliberately exempt from CRS's SQLi family at the edge (waf_rules REQUEST-900):
there the defence is the data layer (bound parameters), shown by storing the payload and reading it
back byte for byte, and by a time-based payload that does not delay the answer.
"""

from __future__ import annotations

from attacks.classify import Neutralized, Observation
from attacks.runner import Context, attack
from attacks.suites._common import ACCEPTED, message_payload, query_payload, title_payload

SUITE = "injection"
SQL_ERROR_MARKERS = ("syntax error at or near", "unterminated quoted string", "asyncpg", "psycopg", "pg_catalog",
                     "SQLSTATE", "root:x:0:0")
SLEEP_S = 6.0


@attack("A03-SQLI-QUERY-01", "SQLi tautology in ?limit= of the conversation list",
        ["OWASP-A03:2021", "API8:2023", "ASVS-V5.3.4", "CWE-89"], "edge", suite=SUITE)
async def sqli_query_limit(ctx: Context) -> Observation:
    return await query_payload(ctx, "alice", {"limit": "1' OR '1'='1"})


@attack("A03-SQLI-CURSOR-01", "SQLi UNION in ?cursor= of the conversation list",
        ["OWASP-A03:2021", "ASVS-V5.3.4", "CWE-89"], "edge", suite=SUITE)
async def sqli_query_cursor(ctx: Context) -> Observation:
    return await query_payload(ctx, "alice", {"cursor": "1 UNION SELECT usename,passwd FROM pg_shadow--"})


@attack("A03-SQLI-PATH-01", "SQLi in the conversation id path segment",
        ["OWASP-A03:2021", "ASVS-V5.3.4", "CWE-89"], "edge", suite=SUITE)
async def sqli_path(ctx: Context) -> Observation:
    _, f = await ctx.request("GET", "/conversations/1' OR '1'='1/messages", user="alice")
    return Observation(response=f)


@attack("A03-SQLI-TITLE-01", "SQLi UNION in the conversation title (JSON field)",
        ["OWASP-A03:2021", "ASVS-V5.3.4", "CWE-89"], "edge", suite=SUITE)
async def sqli_title(ctx: Context) -> Observation:
    return await title_payload(ctx, "alice", "x' UNION SELECT usename, passwd FROM pg_shadow --", SQL_ERROR_MARKERS)


@attack("A03-SQLI-MSG-01", "SQLi stacked query in the chat message (WAF-exempt field: bound parameters)",
        ["OWASP-A03:2021", "ASVS-V5.3.4", "ASVS-V5.3.5", "CWE-89"], "data", suite=SUITE)
async def sqli_message(ctx: Context) -> Observation:
    payload = "hello'); DROP TABLE messages; SELECT * FROM pg_shadow; --"
    body, obs = await message_payload(ctx, "alice", payload)
    if obs.response is None or obs.response.status not in ACCEPTED:
        return obs
    if any(m in str(body) for m in SQL_ERROR_MARKERS):
        obs.effective = True
        return obs
    msg = body["message"]
    r, _ = await ctx.request("GET", f"/conversations/{msg['conversation_id']}/messages", user="alice",
                             params={"limit": 100})
    # Read back from the table the payload tried to drop: there, under its id, byte for byte.
    read_back = r.status_code == 200 and any(
        m.get("id") == msg["id"] and m.get("content") == payload for m in r.json().get("items", []))
    if read_back:
        obs.neutralized = Neutralized(layer="data", proof={
            "read_back_verbatim": True, "messages_table_still_readable": True,
            "why": "the payload is a bound parameter, stored as text"})
    return obs


@attack("A03-SQLI-MSG-02", "Time-based blind SQLi (pg_sleep) in the chat message",
        ["OWASP-A03:2021", "ASVS-V5.3.4", "CWE-89"], "data", suite=SUITE)
async def sqli_message_time(ctx: Context) -> Observation:
    payload = f"x'||(SELECT pg_sleep({SLEEP_S:.0f}))||'"
    body, obs = await message_payload(ctx, "alice", payload)
    f = obs.response
    if f is None or f.status not in ACCEPTED:
        return obs
    obs.notes["elapsed_s"] = f.elapsed_s
    if f.elapsed_s >= SLEEP_S:
        obs.effective = True
        obs.notes["reason"] = f"the answer took {f.elapsed_s}s: the sleep ran"
        return obs
    if body["message"]["content"] == payload:
        obs.neutralized = Neutralized(layer="data", proof={
            "stored_verbatim": True, "elapsed_s": f.elapsed_s, "sleep_s": SLEEP_S,
            "why": "no delay: the payload was never executed"})
    return obs
