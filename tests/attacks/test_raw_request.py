"""raw_request sends the request head exactly as written and parses the answer (in-process server)."""

from __future__ import annotations

import asyncio

from attacks.runner import Target, raw_request


async def test_absolute_form_request_line_is_sent_verbatim() -> None:
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readline())
        body = b'{"type":"urn:seclab:problem:not-found","status":404,"request_id":"r1"}'
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/problem+json\r\nX-Request-ID: r1\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        target = Target(base_url=f"http://127.0.0.1:{port}", verify=False, token_url="http://x/token")
        f = await raw_request(target, "GET http://127.0.0.1:9/ HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n")
    finally:
        server.close()
        await server.wait_closed()
    assert seen == [b"GET http://127.0.0.1:9/ HTTP/1.1\r\n"]
    assert (f.status, f.problem, f.request_id, f.body_request_id) == (404, "not-found", "r1", "r1")
