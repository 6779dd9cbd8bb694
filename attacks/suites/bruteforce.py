"""Credential stuffing and request flooding, bounded (API2:2023 / API4:2023, OWASP A07:2021; ASVS 4.0.3
V2.2.1 anti-automation, V11.1.4).

Bounded by construction: the lockout case makes (brute_force_max_failures + 2) guesses and one try
with the real password; the rate-limit case sends at most per_user_per_minute + 30 requests and stops
at the first 429. Side effect, by design: the victim (default carol, `--bruteforce-user`) is locked
for identity.brute_force_wait_increment_s seconds afterwards.
"""

from __future__ import annotations

import asyncio

from attacks.classify import Observation
from attacks.runner import Context, attack, new_uuid
from labdef.tokens import user_password

SUITE = "bruteforce"


@attack("API4-RATE-MSG-01", "Flood the message route until 429 (per-user / per-address limits)",
        ["API4:2023", "ASVS-V11.1.4", "CWE-770"], "edge", suite=SUITE, tests_limits=True)
async def rate_messages(ctx: Context) -> Observation:
    """Posts to a conversation id that does not exist: the limits run before the lookup, nothing is stored."""
    user = str(ctx.options.get("rate_user", "carol"))
    budget = int(ctx.lab.limits.rate_limits.per_user_per_minute) + 30
    path = f"/conversations/{new_uuid()}/messages"
    headers = await ctx.auth(user)
    sent = 0
    statuses: dict[int, int] = {}
    first_429 = None
    concurrency = 6
    while sent < budget and first_429 is None:
        batch = min(concurrency, budget - sent)
        results = await asyncio.gather(*[
            ctx.request("POST", path, headers=headers, json={"content": f"flood {sent + i}"}) for i in range(batch)])
        sent += batch
        for r, f in results:
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            if r.status_code == 429 and first_429 is None:
                first_429 = f
    notes = {"requests_sent": sent, "statuses": {str(k): v for k, v in sorted(statuses.items())}}
    if first_429 is None:
        return Observation(effective=True, response=results[-1][1], notes={
            **notes, "reason": f"{sent} requests in a burst, never rate-limited"})
    return Observation(response=first_429, notes=notes)


@attack("A07-BRUTE-TOKEN-01", "Password guessing at the token endpoint until lockout, then the real password",
        ["OWASP-A07:2021", "API2:2023", "ASVS-V2.2.1", "CWE-307"], "identity", suite=SUITE, tests_limits=True)
async def brute_token(ctx: Context) -> Observation:
    user = str(ctx.options.get("bruteforce_user", "carol"))
    guesses = int(ctx.lab.identity.brute_force_max_failures) + 2
    form = {"grant_type": "password", "client_id": ctx.target.client_id, "username": user, "scope": "openid"}
    notes: dict[str, object] = {"victim": user, "guesses": guesses}
    real = await asyncio.to_thread(user_password, ctx.lab, user)
    # Control: the real password works BEFORE the guesses, so a refusal afterwards is the lockout.
    r, f = await ctx.request("POST", ctx.target.token_url, data={**form, "password": real})
    if r.status_code != 200:
        return Observation(response=f, notes=notes, error=(
            f"control failed: the real password of {user} is refused before any guess ({f.status} "
            f"{f.oauth_error or f.problem}); still locked from an earlier run?"))
    for i in range(guesses):
        r, f = await ctx.request("POST", ctx.target.token_url, data={**form, "password": f"Winter2024!{i}"})
        if r.status_code == 429:
            notes["rate_limited_after"] = i + 1
            return Observation(response=f, notes=notes)
        if r.status_code == 200:
            return Observation(effective=True, response=f, notes={**notes, "reason": "a guessed password worked"})
    r, f = await ctx.request("POST", ctx.target.token_url, data={**form, "password": real})
    if r.status_code == 200:
        return Observation(effective=True, response=f, notes={
            **notes, "reason": f"after {guesses} failures the account was not locked: the real password still works"})
    notes["real_password_refused_after_failures"] = True
    return Observation(response=f, notes=notes)
