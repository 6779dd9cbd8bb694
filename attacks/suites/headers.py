"""Header attacks (OWASP A03:2021 injection / A05 misconfiguration): CRLF response splitting, log and
header injection through X-Request-ID, Host header poisoning, and X-Forwarded-For spoofing to dodge
per-address rate limits (API4:2023)."""

from __future__ import annotations

from attacks.classify import Neutralized, Observation
from attacks.model import Layer
from attacks.runner import Context, attack

SUITE = "headers"


@attack("A03-CRLF-QUERY-01", "CRLF response splitting via ?cursor= (%0d%0aSet-Cookie)",
        ["OWASP-A03:2021", "ASVS-V5.1.1", "CWE-113"], "edge", suite=SUITE)
async def crlf_query(ctx: Context) -> Observation:
    r, f = await ctx.request("GET", "/conversations", user="alice",
                             params={"cursor": "abc\r\nSet-Cookie: seclab_pwned=1\r\nX-Injected: 1"})
    if "seclab_pwned" in r.headers.get("set-cookie", "") or "x-injected" in r.headers:
        return Observation(effective=True, response=f, notes={"reason": "injected response header"})
    return Observation(response=f)


@attack("A03-CRLF-RID-01", "Header/log injection through a hostile X-Request-ID",
        ["OWASP-A03:2021", "OWASP-A09:2021", "ASVS-V7.3.1", "CWE-117"], "edge", suite=SUITE)
async def crlf_request_id(ctx: Context) -> Observation:
    evil = "x%0d%0aSet-Cookie:%20seclab_pwned=1 {\"log.level\":\"critical\"}"
    r, f = await ctx.request("GET", "//healthz", headers={"X-Request-ID": evil})
    echoed = r.headers.get("x-request-id", "")
    if echoed == evil or "seclab_pwned" in r.headers.get("set-cookie", ""):
        return Observation(effective=True, response=f, notes={"reason": "the hostile id was echoed"})
    if r.status_code == 200 and echoed:
        who: Layer = "edge" if ctx.target.through_edge else "app"
        return Observation(response=f, neutralized=Neutralized(layer=who, proof={
            "sent": evil, "echoed": echoed, "why": f"the {who} replaced an id outside [A-Za-z0-9._:-]"}))
    return Observation(response=f)


@attack("A05-HOST-01", "Host header of another site (cache poisoning, link poisoning)",
        ["OWASP-A05:2021", "ASVS-V14.5.1", "CWE-644"], "edge", suite=SUITE, requires_edge=True)
async def host_header(ctx: Context) -> Observation:
    r, f = await ctx.request("GET", "//healthz", headers={"Host": "evil.example"})
    if r.status_code == 200 or "evil.example" in r.headers.get("location", ""):
        return Observation(effective=True, response=f, notes={"reason": "answered for a foreign Host"})
    return Observation(response=f)


@attack("API4-XFF-RATE-01", "Rotate X-Forwarded-For to dodge the token endpoint's per-address limit",
        ["API4:2023", "OWASP-A07:2021", "ASVS-V11.1.4", "CWE-290"], "edge", suite=SUITE, tests_limits=True,
        requires_edge=True)
async def xff_rotation(ctx: Context) -> Observation:
    """Bounded: at most token burst + 10 guesses for a user that does not exist (no lockout side effect)."""
    attempts = int(ctx.options.get("xff_attempts", 24))
    last = None
    for i in range(attempts):
        r, f = await ctx.request(
            "POST", ctx.target.token_url,
            data={"grant_type": "password", "client_id": ctx.target.client_id, "username": "nobody-xff",
                  "password": f"guess-{i}"},
            headers={"X-Forwarded-For": f"203.0.113.{i + 1}", "X-Real-IP": f"203.0.113.{i + 1}"})
        last = f
        if r.status_code == 429:
            return Observation(response=f, notes={"attempts_until_429": i + 1})
    return Observation(effective=True, response=last, notes={
        "reason": f"{attempts} guesses from one address with rotating X-Forwarded-For, never rate-limited"})
