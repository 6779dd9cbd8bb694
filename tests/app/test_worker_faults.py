"""Fault test of the issue "AI gateway and worker": every accepted message is answered or dead-lettered,
none lost, none answered twice, while the model server, Redis and PostgreSQL fail in the middle of a run.

Real pieces: the API (`create_app`, real Celery enqueuer), a real Celery worker (solo pool, embedded
beat = the sweeper) as a subprocess, the lab's PostgreSQL (tenant roles), a llama.cpp server with
the tiny model, and a PRIVATE redis-server with the production ACL shape (no default user, the app
publishes as `seclab_app`, the worker consumes as `seclab_worker`; rules in ACL_RULES below, the same
lines the report hands to the redis role). Every process here is started and stopped by this test;
the lab's own PostgreSQL/Redis are never stopped: PostgreSQL is cut for the worker by closing a TCP
proxy the test owns (the worker's SECLAB_DB_PORT points at it).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest

from app.core.config import Settings
from app.main import create_app
from tests.app.ai.gateway.conftest import ROOT, tiny_model  # noqa: F401 - session fixture reused
from tests.app.conftest import auth, stand_in_screener
from tests.conftest import need

pytestmark = pytest.mark.integration  # live: the lab's PostgreSQL and Redis

P = "/api/v1"

# The ACL lines proposed for playbooks/roles/redis (seclab_app, seclab_worker); `user ... on #<sha256>` is
# prepended per user. Celery/kombu facts they rest on (checked with ACL LOG on redis 7.0):
# - the worker's kombu Lua (binding refresh) calls TIME (@fast, in none of the categories): +time;
# - PSUBSCRIBE needs a *literal* match of an allowed channel pattern, so `&seclab:*` does not allow the
#   pattern subscriptions of events (gossip, Flower) and remote control (pidbox): they are listed;
# - the API only publishes (LPUSH, SADD binding, PUBLISH task-sent event): the app rules suffice as they are.
ACL_RULES = {
    "seclab_app": "resetkeys ~seclab:* resetchannels &seclab:* -@all +@connection +@read +@write +@string +@hash"
                  " +@list +@set +@sortedset +@stream +@scripting +@transaction +@pubsub -@dangerous +info",
    "seclab_worker": "resetkeys ~seclab:* resetchannels &seclab:* &seclab:/0.celeryev/* &seclab:/0.celeryev/worker.*"
                     " &seclab:/0.celery.pidbox -@all +@connection +@read +@write +@keyspace +@string +@hash +@list"
                     " +@set +@sortedset +@stream +@scripting +@transaction +@pubsub -@dangerous +info +time",
}


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A private redis-server with the ACL file and an append-only file (fsync always): the dead-letter
    stream must survive a crash, or a failed message would be left without its dead letter (the
    redis role runs RDB snapshots only: see docs/ai.md, appendonly is recommended there).
    Messages accepted while it is down never reach it: PostgreSQL and the sweeper recover them."""

    def __init__(self, workdir: Path, port: int) -> None:
        self.dir = workdir
        self.port = port
        self.passwords = {u: secrets.token_hex(16) for u in ACL_RULES}
        lines = ["user default off resetpass resetkeys resetchannels -@all"]
        for user, rules in ACL_RULES.items():
            digest = hashlib.sha256(self.passwords[user].encode()).hexdigest()
            lines.append(f"user {user} on resetpass #{digest} {rules}")
            pw = workdir / f"{user}.pw"
            pw.write_text(self.passwords[user])
            pw.chmod(0o600)
        (workdir / "users.acl").write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def pw_file(self, user: str) -> str:
        return str(self.dir / f"{user}.pw")

    def url(self, user: str) -> str:
        return f"redis://{user}:{self.passwords[user]}@127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--appendfsync", "always",
             "--aclfile", str(self.dir / "users.acl"), "--dir", str(self.dir)],
            stdout=(self.dir / "redis.log").open("ab"), stderr=subprocess.STDOUT)
        for _ in range(100):
            if _port_open(self.port):
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()  # a crash, not a clean shutdown
            self.proc.wait(10)
            self.proc = None


class TcpProxy:
    """127.0.0.1:<port> -> 127.0.0.1:<target>; `cut()` closes the listener and every open connection
    (PostgreSQL is "down" for whoever connects through it), `restore()` listens again."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = _free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            w.close()

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            w.close()
            return
        self.writers |= {w, uw}
        try:
            await asyncio.gather(self._pipe(r, uw), self._pipe(ur, w))
        finally:
            self.writers -= {w, uw}

    async def _restore(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def _cut(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for w in list(self.writers):
            w.transport.abort()
        self.writers.clear()

    def restore(self) -> None:
        self._call(self._restore())

    def cut(self) -> None:
        self._call(self._cut())

    def close(self) -> None:
        self.cut()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class LlamaServer:
    def __init__(self, model: Path, workdir: Path, port: int) -> None:
        self.model = model
        self.port = port
        self.key = secrets.token_hex(16)
        self.key_file = workdir / "llama_api_key"
        self.key_file.write_text(self.key)
        self.key_file.chmod(0o600)
        self.url = f"http://127.0.0.1:{port}/v1"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model), "--host", "127.0.0.1",
             "--port", str(self.port), "--api_key", self.key, "--n_ctx", "512", "--n_threads", "1",
             "--model_alias", "tiny"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                h = {"Authorization": f"Bearer {self.key}"}
                if httpx.get(self.url + "/models", headers=h, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError("llama.cpp server exited at start")
            time.sleep(0.3)
        raise RuntimeError("llama.cpp server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, settings: Settings,  # noqa: F811
        synced: list[str]) -> Iterator[dict[str, Any]]:
    need(shutil.which("redis-server") is not None, "redis-server (./lab up installs it)")
    work = tmp_path_factory.mktemp("faults")
    # free ports picked now (other test runs and helpers use the fixed ones); the ACL does not name ports
    redis = RedisServer(work, _free_port())
    llama = LlamaServer(tiny_model, work, _free_port())
    proxy = TcpProxy(settings.db_port)
    worker: subprocess.Popen[bytes] | None = None
    log = work / "worker.log"
    try:
        redis.start()
        llama.start()
        proxy.restore()
        env = {**os.environ, "SECLAB_ENV_FILE": str(os.environ.get("SECLAB_ENV_FILE", "/etc/seclab/app.env")),
               "SECLAB_REDIS_URL": f"redis://127.0.0.1:{redis.port}/0", "SECLAB_REDIS_SENTINELS": "",
               "SECLAB_REDIS_USER": "seclab_worker",
               "SECLAB_REDIS_PASSWORD_FILE": redis.pw_file("seclab_worker"), "SECLAB_DB_PORT": str(proxy.port),
               "SECLAB_WORKER_RUNTIME": "tests.app.worker_faults_runtime:build",
               "SECLAB_WORKER_MAX_RETRIES": "3", "SECLAB_WORKER_RETRY_BASE_S": "0.5",
               "SECLAB_WORKER_RETRY_MAX_S": "1.5", "SECLAB_WORKER_SWEEP_INTERVAL_S": "1",
               "SECLAB_WORKER_SWEEP_OLDER_THAN_S": "4", "TEST_LLAMA_URL": llama.url,
               "TEST_LLAMA_KEY_FILE": str(llama.key_file), "PYTHONPATH": str(ROOT)}
        with log.open("wb") as fh:
            worker = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "app.worker.celery_app", "worker", "--pool", "solo", "--beat",
                 "--schedule", str(work / "beat-schedule"), "-n", "faults@%h", "--loglevel", "INFO"],
                cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while b"ready." not in log.read_bytes():
            if worker.poll() is not None or time.monotonic() > deadline:
                pytest.fail("worker did not start:\n" + log.read_text()[-3000:])
            time.sleep(0.2)
        yield {"redis": redis, "llama": llama, "proxy": proxy, "log": log}
    finally:
        if worker is not None:
            worker.terminate()
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                worker.kill()
        llama.stop()
        redis.stop()
        proxy.close()


@pytest.fixture(scope="module")
async def api(rig: dict[str, Any], settings: Settings, lab: Any, issuer: Any) -> AsyncIterator[httpx.AsyncClient]:
    redis: RedisServer = rig["redis"]
    s = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{redis.port}/0", "redis_user": "seclab_app",
                                    "redis_password_file": redis.pw_file("seclab_app"), "redis_sentinels": ""})
    application = create_app(settings=s, lab=lab, http_client=issuer.client(), screener=stand_in_screener)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, client=(f"2001:db8::{uuid.uuid4().hex[:4]}", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test", timeout=30) as c:
            yield c


async def _dlq_ids(redis: RedisServer) -> list[str]:
    import redis.asyncio as aioredis

    from app.worker.dlq import dlq_list

    rdb = aioredis.Redis.from_url(redis.url("seclab_worker"))
    try:
        return [e.message_id for _, e in await dlq_list(rdb, 10000)]
    finally:
        await rdb.aclose()


async def test_faults_lose_nothing_and_double_nothing(
    rig: dict[str, Any], api: httpx.AsyncClient, users: dict, owner: asyncpg.Connection, settings: Settings
) -> None:
    redis: RedisServer = rig["redis"]
    llama: LlamaServer = rig["llama"]
    proxy: TcpProxy = rig["proxy"]
    accepted: dict[UUID, str] = {}  # message id -> tenant
    convs = {}
    for who in ("alice", "bob"):
        r = await api.post(f"{P}/conversations", json={"title": "faults"}, headers=auth(users, who))
        assert r.status_code == 201, r.text
        convs[who] = r.json()["id"]

    async def send(n: int, tag: str) -> None:
        for i in range(n):
            who = ("alice", "bob")[i % 2]
            r = await api.post(f"{P}/conversations/{convs[who]}/messages", json={"content": f"{tag} {i}"},
                               headers=auth(users, who))
            assert r.status_code == 202, r.text
            accepted[UUID(r.json()["message"]["id"])] = "acme" if who == "alice" else "globex"

    async def statuses() -> dict[UUID, str]:
        out: dict[UUID, str] = {}
        for tenant in ("acme", "globex"):
            ids = [m for m, t in accepted.items() if t == tenant]
            rows = await owner.fetch(f"SELECT id, status FROM tenant_{tenant}.messages WHERE id = ANY($1)", ids)
            out |= {r["id"]: r["status"] for r in rows}
        return out

    async def settle(timeout: float = 90) -> dict[UUID, str]:
        deadline = time.monotonic() + timeout
        while True:
            st = await statuses()
            if all(v in ("answered", "failed") for v in st.values()) and len(st) == len(accepted):
                return st
            if time.monotonic() > deadline:
                pending = [str(k) for k, v in st.items() if v == "pending"]
                raise AssertionError(f"still pending: {pending}\n" + rig["log"].read_text()[-4000:])
            await asyncio.sleep(0.5)

    # healthy
    await send(4, "healthy")
    await settle()

    # model server down for longer than the retry budget, then back
    llama.stop()
    await send(4, "model-down")
    await asyncio.sleep(9)
    llama.start()
    await send(2, "model-back")

    # Redis crashes (queued tasks lost), messages accepted meanwhile, Redis back empty
    await asyncio.sleep(1)
    redis.stop()
    await send(4, "redis-down")
    redis.start()

    # PostgreSQL unreachable for the worker for a while
    await asyncio.sleep(2)
    proxy.cut()
    await send(4, "pg-down")
    await asyncio.sleep(4)
    proxy.restore()

    st = await settle()
    dlq = set(await _dlq_ids(redis))

    async def reply_counts() -> dict[UUID, int]:
        out: dict[UUID, int] = {}
        for tenant in ("acme", "globex"):
            rows = await owner.fetch(
                f"SELECT reply_to, count(*) AS n FROM tenant_{tenant}.messages WHERE reply_to = ANY($1) GROUP BY reply_to",
                [m for m, t in accepted.items() if t == tenant])
            out |= {r["reply_to"]: r["n"] for r in rows}
        return out

    counts = await reply_counts()
    assert len(accepted) == 18
    for mid, status in st.items():
        if status == "answered":
            assert counts.get(mid) == 1, f"{mid}: {counts.get(mid)} replies"
        else:
            assert counts.get(mid, 0) == 0
            assert str(mid) in dlq, f"{mid} failed but is not in the dead-letter stream"
    failed = [m for m, s in st.items() if s == "failed"]
    assert failed, "the model outage outlasted the retries: some messages must have been dead-lettered"

    # replay the dead letters (what `lab dlq replay --all` does): every message ends answered exactly once
    import redis.asyncio as aioredis

    from app.worker.celery_app import make_celery
    from app.worker.dlq import dlq_delete, dlq_list

    publisher = make_celery(settings.model_copy(update={
        "redis_url": f"redis://127.0.0.1:{redis.port}/0", "redis_user": "seclab_app",
        "redis_password_file": redis.pw_file("seclab_app"), "redis_sentinels": ""}))
    rdb = aioredis.Redis.from_url(redis.url("seclab_worker"))
    try:
        for entry_id, e in await dlq_list(rdb, 10000):
            await asyncio.to_thread(publisher.send_task, e.task, args=[e.tenant, e.message_id], retry=False)
            await dlq_delete(rdb, entry_id)
    finally:
        await rdb.aclose()
    deadline = time.monotonic() + 60
    while any(v != "answered" for v in (await statuses()).values()):
        assert time.monotonic() < deadline, rig["log"].read_text()[-4000:]
        await asyncio.sleep(0.5)
    counts = await reply_counts()
    assert set(counts) == set(accepted) and set(counts.values()) == {1}
    log = rig["log"].read_text()
    assert "NOPERM" not in log and "NoPermission" not in log, "an ACL rule is missing for the worker"
