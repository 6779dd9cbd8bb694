from __future__ import annotations

import httpx

from tests.integration.conftest import auth


async def test_create_and_post(client: httpx.AsyncClient, users: dict) -> None:
    r = await client.post("/api/v1/conversations", json={"title": "hi"}, headers=auth(users, "alice"))
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    r = await client.post(f"/api/v1/conversations/{cid}/messages", json={"content": "hello"}, headers=auth(users, "alice"))
    assert r.status_code == 201, r.text
    print(r.json())
