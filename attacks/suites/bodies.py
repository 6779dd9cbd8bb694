"""Hostile request bodies (API4:2023 unrestricted resource consumption, OWASP A05:2021; ASVS 4.0.3
V13.1.x): oversized, malformed JSON, invalid UTF-8, wrong content type, deep nesting, duplicate keys."""

from __future__ import annotations

from attacks.classify import Observation
from attacks.runner import Context, attack

SUITE = "bodies"


async def _post_raw(ctx: Context, content: bytes, ctype: str) -> Observation:
    conv = await ctx.conversation("alice")
    r, f = await ctx.request("POST", f"/conversations/{conv}/messages", user="alice", content=content,
                             headers={"Content-Type": ctype})
    if r.status_code == 201:
        return Observation(effective=True, response=f, notes={"reason": "the hostile body was accepted"})
    return Observation(response=f)


@attack("API4-BODY-SIZE-01", "Body larger than limits.body_max_bytes",
        ["API4:2023", "ASVS-V13.1.3", "CWE-770"], "edge", suite=SUITE)
async def body_size(ctx: Context) -> Observation:
    limit = int(ctx.lab.limits.body_max_bytes)
    content = b'{"content": "' + b"A" * (limit + 1024) + b'"}'
    return await _post_raw(ctx, content, "application/json")


@attack("A05-BODY-JSON-01", "Malformed JSON (unterminated object)",
        ["OWASP-A05:2021", "ASVS-V13.1.5", "CWE-20"], "edge", suite=SUITE)
async def body_malformed(ctx: Context) -> Observation:
    return await _post_raw(ctx, b'{"content": "hello", ', "application/json")


@attack("A05-BODY-UTF8-01", "Invalid UTF-8 bytes in the JSON string",
        ["OWASP-A05:2021", "ASVS-V5.1.4", "CWE-176"], "edge", suite=SUITE)
async def body_utf8(ctx: Context) -> Observation:
    return await _post_raw(ctx, b'{"content": "caf\xc3\x28 \xff\xfe overlong \xc0\xaf"}', "application/json")


@attack("A05-BODY-CTYPE-01", "JSON sent with an unexpected content type",
        ["OWASP-A05:2021", "ASVS-V13.1.5", "CWE-436"], "edge", suite=SUITE)
async def body_ctype(ctx: Context) -> Observation:
    return await _post_raw(ctx, b'{"content": "hello"}', "application/x-www-form-urlencoded; charset=evil")


@attack("API4-BODY-NEST-01", "Deeply nested JSON (parser exhaustion, 5000 levels)",
        ["API4:2023", "ASVS-V13.1.3", "CWE-674"], "edge", suite=SUITE)
async def body_nesting(ctx: Context) -> Observation:
    depth = 5000
    return await _post_raw(ctx, b'{"content": ' + b"[" * depth + b"]" * depth + b"}", "application/json")


@attack("API8-BODY-DUPKEY-01", "Duplicate content keys (parser differential between WAF and app)",
        ["API8:2023", "OWASP-A05:2021", "CWE-436"], "edge", suite=SUITE, requires_edge=True)
async def body_dupkey(ctx: Context) -> Observation:
    return await _post_raw(ctx, b'{"content": "hello", "content": "\' OR 1=1 --"}', "application/json")
