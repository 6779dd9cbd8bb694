"""Broken object level authorization across users and tenants (API1:2023, OWASP A01:2021).

The victim is alice (tenant acme) with one conversation holding a private message; bob (tenant globex)
and carol (acme, another user) try to read, list and write it. The API answers 404 for objects the
caller may not see (a 403 would confirm they exist), so the refusal is the app's `not-found`; the data
layer (schema and role per tenant) is under it but does not show over HTTP.
"""

from __future__ import annotations

from typing import Any

from attacks.classify import Neutralized, Observation
from attacks.runner import Context, attack

SUITE = "bola"
REFS = ["API1:2023", "OWASP-A01:2021", "ASVS-V4.2.1", "CWE-639"]
SECRET = "alice-private-note: my phone is +1 202 555 0143 and my badge is ACME-7781"


async def victim(ctx: Context) -> dict[str, Any]:
    """alice's conversation with a private message (made once per run)."""

    async def make() -> dict[str, Any]:
        r, f = await ctx.request("POST", "/conversations", user="alice", json={"title": "private"})
        if r.status_code != 201:
            raise RuntimeError(f"victim conversation not created: {f.status} {f.problem}")
        conv = r.json()["id"]
        r, f = await ctx.request("POST", f"/conversations/{conv}/messages", user="alice", json={"content": SECRET})
        # Without the private message the conversation is still a valid target (its id is the secret then).
        stored = r.status_code == 201
        return {"conversation": conv, "message": r.json()["message"]["id"] if stored else None,
                "victim_message": "stored" if stored else f"not stored ({f.status} {f.problem})"}

    return await ctx.fixture("bola:victim", make)


async def _read(ctx: Context, user: str, path: str) -> Observation:
    v = await victim(ctx)
    r, f = await ctx.request("GET", path.format(**v), user=user)
    notes = {"victim_message": v["victim_message"]}
    if r.status_code == 200 and (SECRET in r.text or v["conversation"] in r.text):
        return Observation(effective=True, response=f, notes={**notes, "reason": f"{user} read alice's conversation"})
    return Observation(response=f, notes=notes)


@attack("API1-BOLA-READ-01", "bob (globex) reads alice's (acme) conversation by id", REFS, "data", suite=SUITE)
async def bola_read(ctx: Context) -> Observation:
    return await _read(ctx, "bob", "/conversations/{conversation}")


@attack("API1-BOLA-MSGS-01", "bob (globex) lists the messages of alice's (acme) conversation", REFS, "data",
        suite=SUITE)
async def bola_messages(ctx: Context) -> Observation:
    return await _read(ctx, "bob", "/conversations/{conversation}/messages")


@attack("API1-BOLA-WRITE-01", "bob (globex) posts into alice's (acme) conversation", REFS, "data", suite=SUITE)
async def bola_write(ctx: Context) -> Observation:
    v = await victim(ctx)
    marker = "bob-was-here-7c1e"
    r, f = await ctx.request("POST", f"/conversations/{v['conversation']}/messages", user="bob",
                             json={"content": marker})
    r2, _ = await ctx.request("GET", f"/conversations/{v['conversation']}/messages", user="alice",
                              params={"limit": 100})
    landed = r2.status_code == 200 and marker in r2.text
    if r.status_code == 201 or landed:
        return Observation(effective=True, response=f, notes={"landed_in_victim_conversation": landed})
    return Observation(response=f, notes={"landed_in_victim_conversation": False})


@attack("API1-BOLA-LIST-01", "bob (globex) lists conversations: alice's must not appear", REFS, "app",
        suite=SUITE)
async def bola_list(ctx: Context) -> Observation:
    v = await victim(ctx)
    r, f = await ctx.request("GET", "/conversations", user="bob", params={"limit": 100})
    if r.status_code != 200:
        return Observation(response=f)
    if v["conversation"] in r.text or SECRET in r.text:
        return Observation(effective=True, response=f, notes={"reason": "alice's conversation in bob's list"})
    return Observation(response=f, neutralized=Neutralized(layer="app", proof={
        "victim_listed": False, "items": len(r.json().get("items", [])),
        "why": "the list is scoped to the caller (owner and tenant)"}))


@attack("API1-IDOR-INTRA-01", "carol (same tenant acme) reads alice's conversation messages", REFS, "app",
        suite=SUITE)
async def idor_same_tenant(ctx: Context) -> Observation:
    return await _read(ctx, "carol", "/conversations/{conversation}/messages")


@attack("API1-IDOR-GUESS-01", "bob probes random conversation ids (no enumeration oracle)", REFS, "app",
        suite=SUITE)
async def idor_guess(ctx: Context) -> Observation:
    v = await victim(ctx)
    r1, f1 = await ctx.request("GET", f"/conversations/{v['conversation']}", user="bob")
    r2, f2 = await ctx.request("GET", "/conversations/00000000-0000-4000-8000-000000000000", user="bob")
    same = (r1.status_code, f1.problem) == (r2.status_code, f2.problem)
    if r1.status_code == 200:
        return Observation(effective=True, response=f1)
    if not same:
        return Observation(effective=True, response=f1, notes={
            "reason": "existing and missing ids answer differently (enumeration oracle)",
            "existing": [f1.status, f1.problem], "missing": [f2.status, f2.problem]})
    return Observation(response=f1, notes={"same_answer_as_missing_id": True})
