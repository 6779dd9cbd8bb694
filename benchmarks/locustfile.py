"""Locust scenario for `lab bench`: a chat user logs in, lists conversations, posts and reads back.

Credentials come from the runner through SECLAB_BENCH_USERS (JSON list of {username, password})
so no secret is on a command line; each simulated user takes the next lab user round-robin.
"""

from __future__ import annotations

import itertools
import json
import os
import uuid

from locust import HttpUser, between, task

_USERS = json.loads(os.environ.get("SECLAB_BENCH_USERS", "[]"))
_CYCLE = itertools.cycle(_USERS) if _USERS else None
TOKEN_URL = os.environ.get("SECLAB_BENCH_TOKEN_URL", "")
CLIENT_ID = os.environ.get("SECLAB_BENCH_CLIENT_ID", "seclab-cli")
CA = os.environ.get("SECLAB_BENCH_CA") or False

PROMPTS = [
    "How do I list the files in a directory with Python?",
    "Summarise the difference between TCP and UDP in two sentences.",
    "Write a SQL query that counts orders per customer: SELECT customer_id, COUNT(*) FROM orders GROUP BY 1;",
    "What is a good name for a cat that likes boxes?",
]


class ChatUser(HttpUser):
    # A person reads the answer before the next action: 2-5 s between actions keeps each simulated
    # user under the lab's per-user rate limit, so 429s in a run mean the lab, not the script, is off.
    wait_time = between(2, 5)

    def on_start(self) -> None:
        if _CYCLE is None:
            raise RuntimeError("SECLAB_BENCH_USERS is empty: run through `./lab bench`")
        creds = next(_CYCLE)
        self.client.verify = CA
        r = self.client.post(
            TOKEN_URL,
            data={"grant_type": "password", "client_id": CLIENT_ID, **creds},
            name="POST /token (login)",
        )
        r.raise_for_status()
        self.client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        r = self.client.post("/api/v1/conversations", json={"title": "bench"}, name="POST /conversations")
        r.raise_for_status()
        self.conversation_id = r.json()["id"]

    @task(2)
    def list_conversations(self) -> None:
        self.client.get("/api/v1/conversations?limit=20", name="GET /conversations")

    @task(3)
    def post_and_read(self) -> None:
        cid = self.conversation_id
        prompt = PROMPTS[uuid.uuid4().int % len(PROMPTS)]
        self.client.post(
            f"/api/v1/conversations/{cid}/messages",
            json={"content": prompt},
            # Wait (RFC 7240) for the worker's answer so the latency covers the whole chat turn.
            headers={"Idempotency-Key": str(uuid.uuid4()), "Prefer": "wait=10"},
            name="POST /conversations/{id}/messages",
        )
        self.client.get(f"/api/v1/conversations/{cid}/messages?limit=20", name="GET /conversations/{id}/messages")
