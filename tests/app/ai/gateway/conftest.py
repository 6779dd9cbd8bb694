"""Servers for the AI gateway tests: a private redis-server and the llama.cpp server, each on a free port.

The llama.cpp server with the generated tiny model is the STAND-IN for OpenAI (no route to OpenAI
here): the same `OpenAICompatProvider` talks to both. Each fixture stops only what it started.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import need

ROOT = Path(__file__).resolve().parents[4]


def _free_port() -> int:
    """A port nobody listens on now: fixed ports collide with other runs and with developers' services."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


REDIS_PORT = _free_port()
LLAMA_PORT = _free_port()
REDIS_URL = f"redis://127.0.0.1:{REDIS_PORT}/0"


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    need(shutil.which("redis-server") is not None, "redis-server (./lab up installs it)")
    started = False
    if not _port_open(REDIS_PORT):
        subprocess.run(["redis-server", "--port", str(REDIS_PORT), "--bind", "127.0.0.1", "--save", "",
                        "--appendonly", "no", "--daemonize", "yes",
                        "--pidfile", f"/tmp/seclab-ai-redis-{REDIS_PORT}.pid"], check=True)
        started = True
        for _ in range(50):
            if _port_open(REDIS_PORT):
                break
            time.sleep(0.1)
    yield REDIS_URL
    if started:
        subprocess.run(["redis-cli", "-p", str(REDIS_PORT), "shutdown", "nosave"], check=False,
                       capture_output=True)


@pytest.fixture
async def redis(redis_server: str):  # type: ignore[no-untyped-def]
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_server)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from app.ai.tinymodel import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("models") / "tiny.gguf")


@pytest.fixture(scope="session")
def llama_server(tiny_model: Path) -> Iterator[tuple[str, str]]:
    """(base_url, api_key) of a real llama.cpp OpenAI-compatible server with the tiny model."""
    assert not _port_open(LLAMA_PORT), f"port {LLAMA_PORT} was free a moment ago"
    key = secrets.token_hex(16)
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(tiny_model), "--host", "127.0.0.1",
         "--port", str(LLAMA_PORT), "--api_key", key, "--n_ctx", "512", "--n_threads", "1",
         "--model_alias", "tiny"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, env={**os.environ},
    )
    base = f"http://127.0.0.1:{LLAMA_PORT}/v1"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/models", headers={"Authorization": f"Bearer {key}"}, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                pytest.fail("llama.cpp server exited at start")
            time.sleep(0.3)
        else:
            pytest.fail("llama.cpp server did not start")
        yield base, key
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
