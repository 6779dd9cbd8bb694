"""Locust scenario for `lab bench`: a chat user logs in, lists conversations, posts and reads back.

Credentials come from the runner through SECLAB_BENCH_USERS (JSON list of {username, password})
so no secret is on a command line; each simulated user (a session) takes the next lab chat account
round-robin, so the sessions spread over every account and tenant lab.yml has.

Every refusal is recorded as `HTTP <status> <problem type> (<detail>)` so benchmarks/analysis.py can
say which limit sent it. Logins happen while users are spawned; once every session has started, the
stats are reset (below) so the measured window is steady load at the full user count. Start-up
failures would be lost with the reset, so they are counted here and written to
SECLAB_BENCH_SESSIONS_FILE when the run stops.
"""

from __future__ import annotations

import itertools
import json
import os
import time
import uuid
from collections import Counter
from typing import Any

import gevent
from locust import HttpUser, between, events, task
from locust.env import Environment

_USERS = json.loads(os.environ.get("SECLAB_BENCH_USERS", "[]"))
_CYCLE = itertools.cycle(_USERS) if _USERS else None
TOKEN_URL = os.environ.get("SECLAB_BENCH_TOKEN_URL", "")
CLIENT_ID = os.environ.get("SECLAB_BENCH_CLIENT_ID", "seclab-cli")
CA = os.environ.get("SECLAB_BENCH_CA") or False
SESSIONS_FILE = os.environ.get("SECLAB_BENCH_SESSIONS_FILE", "")
THINK_MIN_S, THINK_MAX_S = (float(x) for x in os.environ.get("SECLAB_BENCH_THINK_S", "5,15").split(","))
REFRESH_MARGIN_S = 30
LOGIN_ATTEMPTS = 4

PROMPTS = [
    "How do I list the files in a directory with Python?",
    "Summarise the difference between TCP and UDP in two sentences.",
    "Write a SQL query that counts orders per customer: SELECT customer_id, COUNT(*) FROM orders GROUP BY 1;",
    "What is a good name for a cat that likes boxes?",
]

SESSIONS: dict[str, Any] = {"started": 0, "settled": 0, "logged_in": 0, "active": 0, "relogins": 0, "start_failures": Counter()}
_ENV: list[Environment] = []


def refusal(resp: Any, account: str) -> str:
    """`HTTP 429 urn:seclab:problem:rate-limited (per-user rate limit exceeded) as alice`, or the transport
    error; the account says whose per-user limit or budget it was."""
    if not resp.status_code:
        return f"no answer: {type(resp.error).__name__ if resp.error else 'unknown'} as {account}"
    ptype, detail = "no problem type", ""
    try:
        body = resp.json()
        ptype, detail = str(body.get("type", ptype)), str(body.get("detail", ""))[:80]
    except (ValueError, AttributeError):
        pass
    return f"HTTP {resp.status_code} {ptype} ({detail}) as {account}"


def _seconds(retry_after: str | None) -> float:
    """Retry-After in seconds (5 when absent or a date), at most 30."""
    try:
        return min(max(float(retry_after or 5), 0.0), 30.0)
    except ValueError:
        return 5.0


class ChatUser(HttpUser):
    # A person reads the answer and types the next question: 5-15 s between actions (still faster than
    # most people). Load therefore grows with users, as it would in a class, not with a tight loop.
    wait_time = between(THINK_MIN_S, THINK_MAX_S)

    def on_start(self) -> None:
        if _CYCLE is None:
            raise RuntimeError("SECLAB_BENCH_USERS is empty: run through `./lab bench`")
        SESSIONS["started"] += 1
        try:
            self._start()
        finally:
            SESSIONS["settled"] += 1

    def _start(self) -> None:
        assert _CYCLE is not None  # on_start stopped the run without users
        self.creds = next(_CYCLE)
        self.client.verify = CA
        self.dead = True  # until logged in with a conversation; a dead session idles (no respawn storm)
        for _ in range(LOGIN_ATTEMPTS):
            failed = self._login("POST /token (login)")
            if not failed:
                break
            SESSIONS["start_failures"][f"POST /token (login): {failed}"] += 1
            # A well-behaved client waits as told (Retry-After) instead of hammering the login limiter.
            gevent.sleep(_seconds(self._retry_after))
        else:
            return
        SESSIONS["logged_in"] += 1
        with self.client.post("/api/v1/conversations", json={"title": "bench"}, name="POST /conversations",
                              catch_response=True) as r:
            created = r.status_code == 201
            if not created:
                SESSIONS["start_failures"][f"POST /conversations: {refusal(r, self.creds["username"])}"] += 1
                r.failure(refusal(r, self.creds["username"]))
            else:
                self.conversation_id = r.json()["id"]
        self.dead = not created
        SESSIONS["active"] += int(created)

    def _login(self, name: str) -> str | None:
        """Password grant at the edge's token endpoint; the refusal text on failure, else None."""
        creds = {"username": self.creds["username"], "password": self.creds["password"]}
        with self.client.post(TOKEN_URL, data={"grant_type": "password", "client_id": CLIENT_ID, **creds},
                              name=name, catch_response=True) as r:
            self._retry_after = r.headers.get("Retry-After") if r.status_code == 429 else None
            if r.status_code != 200:
                r.failure(refusal(r, self.creds["username"]))
                return refusal(r, self.creds["username"])
            body = r.json()
        self.client.headers["Authorization"] = f"Bearer {body['access_token']}"
        self.token_expires = time.monotonic() + float(body.get("expires_in", 300))
        return None

    def _fresh_token(self) -> None:
        """Log in again shortly before the access token expires (a real client would refresh)."""
        if time.monotonic() > self.token_expires - REFRESH_MARGIN_S:
            SESSIONS["relogins"] += 1
            self._login("POST /token (re-login)")

    def _call(self, method: str, url: str, name: str, ok: tuple[int, ...], **kw: Any) -> None:
        with self.client.request(method, url, name=name, catch_response=True, **kw) as r:
            if r.status_code not in ok:
                r.failure(refusal(r, self.creds["username"]))

    @task(2)
    def list_conversations(self) -> None:
        if self.dead:
            return
        self._fresh_token()
        self._call("GET", "/api/v1/conversations?limit=20", "GET /conversations", (200,))

    @task(3)
    def post_and_read(self) -> None:
        if self.dead:
            return
        self._fresh_token()
        cid = self.conversation_id
        prompt = PROMPTS[uuid.uuid4().int % len(PROMPTS)]
        # Wait (RFC 7240) for the worker's answer so the latency covers the whole chat turn; 202 = the
        # answer took longer than the wait and is still pending (accepted, not an error).
        self._call("POST", f"/api/v1/conversations/{cid}/messages", "POST /conversations/{id}/messages", (201, 202),
                   json={"content": prompt}, headers={"Idempotency-Key": str(uuid.uuid4()), "Prefer": "wait=10"})
        self._call("GET", f"/api/v1/conversations/{cid}/messages?limit=20", "GET /conversations/{id}/messages", (200,))


@events.init.add_listener
def _keep_env(environment: Environment, **_: Any) -> None:
    _ENV.append(environment)


@events.spawning_complete.add_listener
def _reset_once_started(user_count: int, **_: Any) -> None:
    """Locust's own --reset-stats fires before the last users have logged in; wait for them, then reset."""

    def wait_then_reset() -> None:
        deadline = time.monotonic() + 60
        while SESSIONS["settled"] < user_count and time.monotonic() < deadline:
            gevent.sleep(0.2)
        _ENV[0].stats.reset_all()

    gevent.spawn(wait_then_reset)


@events.quitting.add_listener
def _write_sessions(**_: Any) -> None:
    if SESSIONS_FILE:
        data = {**SESSIONS, "start_failures": dict(SESSIONS["start_failures"])}
        with open(SESSIONS_FILE, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
