"""Servers for the AI gateway tests: a private redis-server on 16379 and the llama.cpp server on 18081.

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

ROOT = Path(__file__).resolve().parents[2]
REDIS_PORT = 16379
LLAMA_PORT = 18081
REDIS_URL = f"redis://127.0.0.1:{REDIS_PORT}/0"


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed")
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
    pytest.importorskip("gguf")
    from app.ai.tinymodel import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("models") / "tiny.gguf")


@pytest.fixture(scope="session")
def llama_server(tiny_model: Path) -> Iterator[tuple[str, str]]:
    """(base_url, api_key) of a real llama.cpp OpenAI-compatible server with the tiny model."""
    pytest.importorskip("llama_cpp.server")
    if _port_open(LLAMA_PORT):
        pytest.skip(f"port {LLAMA_PORT} is busy")
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
