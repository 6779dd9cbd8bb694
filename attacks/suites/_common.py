"""Helpers the suites share: payload-in-a-field cases and a loopback canary for SSRF-style checks.

Why a canary: "the server did not fetch my URL" can only be shown by a listener that would have seen
the fetch. It binds 127.0.0.1 on a free port, counts connections, and is closed after the case.
"""

from __future__ import annotations

import asyncio
from typing import Any, Self

from attacks.classify import Neutralized, Observation
from attacks.runner import Context

JSON_AND_NOSNIFF = "served as JSON with X-Content-Type-Options: nosniff (never rendered as HTML)"


async def title_payload(ctx: Context, user: str, payload: str, harmful_markers: tuple[str, ...] = ()) -> Observation:
    """POST /conversations with the payload as title (a field the WAF keeps inspecting).

    Effective if the answer carries a marker of the attack working (file content, SQL error, another
    row); neutralized (app) if it is stored and returned verbatim as JSON text.
    """
    r, f = await ctx.request("POST", "/conversations", user=user, json={"title": payload})
    text = r.text
    hit = [m for m in harmful_markers if m in text]
    if hit:
        return Observation(effective=True, response=f, notes={"markers_in_answer": hit})
    if r.status_code == 201:
        body = r.json()
        verbatim = body.get("title") == payload
        ctype = (f.content_type or "")
        nosniff = r.headers.get("x-content-type-options", "").lower() == "nosniff"
        if verbatim and ctype == "application/json" and nosniff:
            return Observation(response=f, neutralized=Neutralized(
                layer="app", proof={"stored_verbatim": True, "rendering": JSON_AND_NOSNIFF}))
        return Observation(response=f, notes={"stored_verbatim": verbatim, "content_type": ctype})
    return Observation(response=f)


async def query_payload(ctx: Context, user: str, params: dict[str, str]) -> Observation:
    """GET /conversations with attacker-chosen query values (limit / cursor)."""
    _, f = await ctx.request("GET", "/conversations", user=user, params=params)
    # A 200 is not proof of injection, and not proof of safety either: the classifier reports it as error.
    return Observation(response=f)


ACCEPTED = (201, 202)
"""201: answered within `Prefer: wait`; 202: stored `pending`, the worker answers later."""
REPLY_WAIT_S = 25.0


async def _poll_reply(ctx: Context, user: str, conv: str, msg_id: str, wait_s: float) -> dict[str, Any] | None:
    """The assistant message answering `msg_id`, polling the message list (bounded by `wait_s`)."""
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        r, _ = await ctx.request("GET", f"/conversations/{conv}/messages", user=user, params={"limit": 100})
        if r.status_code == 200:
            for m in r.json().get("items", []):
                if m.get("reply_to") == msg_id:
                    return dict(m)
        if asyncio.get_running_loop().time() >= deadline:
            return None
        await asyncio.sleep(1.0)


async def message_payload(ctx: Context, user: str, content: str, want_reply: bool = False) -> tuple[Any, Observation]:
    """POST a message into the user's own conversation; returns (json body or None, observation).

    `want_reply`: ask for the answer (`Prefer: wait=10`) and, if it is still pending, poll for it, so
    the case can check what the model said; the body then carries `reply` (None if none came).
    """
    conv = await ctx.conversation(user)
    headers = {"Prefer": "wait=10"} if want_reply else {}
    r, f = await ctx.request("POST", f"/conversations/{conv}/messages", user=user, json={"content": content},
                             headers=headers)
    body = r.json() if r.headers.get("content-type", "").endswith("json") else None
    if want_reply and r.status_code == 202 and isinstance(body, dict) and isinstance(body.get("message"), dict):
        body["reply"] = await _poll_reply(ctx, user, conv, str(body["message"]["id"]), REPLY_WAIT_S)
    if isinstance(body, dict) and isinstance(body.get("guard"), dict):
        guard = body["guard"]
    elif isinstance(body, dict) and isinstance(body.get("message"), dict):
        guard = body["message"].get("guard")
    else:
        guard = None
    notes: dict[str, Any] = {"guard": guard} if guard else {}
    obs = Observation(response=f, notes=notes)
    if want_reply and r.status_code in ACCEPTED and isinstance(body, dict) and not body.get("reply"):
        obs.error = f"accepted ({r.status_code}) but no answer within {REPLY_WAIT_S:.0f}s: the reply cannot be checked"
    return body, obs


class Canary:
    """A loopback TCP listener that counts connections (and keeps the first request line)."""

    def __init__(self) -> None:
        self.hits = 0
        self.first_line = ""
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.hits += 1
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=2.0)
            self.first_line = self.first_line or line.decode("latin-1", "replace").strip()[:200]
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        except (TimeoutError, OSError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def settle(self, seconds: float = 1.5) -> None:
        """Give a server-side fetch (synchronous or queued) time to arrive."""
        await asyncio.sleep(seconds)

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
