"""Restore is proven, not assumed (issue 14): point-in-time restore with pgBackRest on the provisioned lab.

Each case writes messages in two tenants, takes a backup (`lab backup`), writes more, notes the time
T (the database's clock), writes more again, destroys data, runs `lab restore --time T`, and checks
that exactly the messages written before T are back (by id, user messages and their answers), that
every audit hash chain verifies (`lab audit verify`), and that the app serves them. Destroyed: a
tenant's schema (a DROP by mistake), then the whole data directory (a lost disk).

Late: a restore stops the lab's writers and PostgreSQL for a while.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.app.conftest import InProcessWorker, auth
from tests.conftest import need

pytestmark = [pytest.mark.integration, pytest.mark.late, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
P = "/api/v1"
TIMINGS: list[dict[str, Any]] = []


def _lab(*args: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "seclab.cli", *args], cwd=ROOT, env=dict(os.environ),
                          capture_output=True, text=True, check=False, timeout=timeout)


@pytest.fixture(scope="module")
def backup_cfg() -> Any:
    from seclab.commands.backup import load_config

    need(os.geteuid() == 0, "root (pgBackRest runs as postgres, restores stop services)")
    need(shutil.which("pgbackrest") is not None, "pgbackrest (postgresql role)")
    try:
        return load_config()
    except Exception as exc:  # noqa: BLE001 - LabError: not provisioned
        need(False, f"backup.json ({exc})")


async def _ids(client: httpx.AsyncClient, users: dict, who: str, cid: str) -> set[str]:
    for attempt in range(20):  # the pools reconnect after the restart
        try:
            r = await client.get(f"{P}/conversations/{cid}/messages", params={"limit": 100}, headers=auth(users, who))
        except httpx.HTTPError:
            r = None
        if r is not None and r.status_code == 200:
            return {m["id"] for m in r.json()["items"]}
        await asyncio.sleep(0.5 + attempt * 0.1)
    raise AssertionError(f"the app did not serve {who}'s conversation after the restore: {r and r.text}")


async def _write(client: httpx.AsyncClient, users: dict, worker: InProcessWorker, convs: dict[str, str],
                 tag: str) -> None:
    for who, cid in convs.items():
        for i in range(2):
            r = await client.post(f"{P}/conversations/{cid}/messages", json={"content": f"{tag} {i} from {who}"},
                                  headers=auth(users, who))
            assert r.status_code in (201, 202), r.text
    await worker.drain()


async def _db_now(owner: asyncpg.Connection) -> datetime:
    return await owner.fetchval("SELECT clock_timestamp()")


def _destroy_schema(cfg: Any) -> None:
    from seclab.commands.backup import _psql

    # As the superuser over the socket: the mistake a human with too many rights makes.
    subprocess.run(["runuser", "-u", cfg.pg_user, "--", "psql", "-h", cfg.socket_dir, "-p", str(cfg.port),
                    "-d", "seclab", "-v", "ON_ERROR_STOP=1", "-Atqc", "DROP SCHEMA tenant_globex CASCADE"],
                   check=True, capture_output=True, text=True)
    assert _psql(cfg, "SELECT 1") == "1"


def _destroy_data_dir(cfg: Any) -> None:
    from seclab.commands.backup import _service

    _service("stop", cfg.server_process)
    shutil.rmtree(cfg.data_dir)
    assert not Path(cfg.data_dir).exists()


@pytest.mark.parametrize("destroy", [_destroy_schema, _destroy_data_dir], ids=["drop-schema", "lose-data-dir"])
async def test_point_in_time_restore_brings_back_exactly_what_was_written_before(
    destroy: Any, backup_cfg: Any, client: httpx.AsyncClient, users: dict, worker: InProcessWorker,
    owner: asyncpg.Connection,
) -> None:
    from seclab.commands.backup import archive_current_wal

    convs = {}
    for who in ("alice", "bob"):  # acme and globex
        r = await client.post(f"{P}/conversations", json={"title": f"restore {destroy.__name__}"},
                              headers=auth(users, who))
        assert r.status_code == 201, r.text
        convs[who] = r.json()["id"]
    await _write(client, users, worker, convs, "before-backup")
    t0 = time.monotonic()
    done = await asyncio.to_thread(_lab, "backup")
    backup_s = time.monotonic() - t0
    assert done.returncode == 0, done.stdout + done.stderr
    await _write(client, users, worker, convs, "after-backup")
    await asyncio.sleep(1.0)
    target = await _db_now(owner)
    await asyncio.sleep(1.0)
    expected = {who: await _ids(client, users, who, cid) for who, cid in convs.items()}
    assert all(len(ids) == 8 for ids in expected.values()), expected  # 4 messages + 4 answers each
    await _write(client, users, worker, convs, "after-target")
    later = {who: await _ids(client, users, who, cid) for who, cid in convs.items()}
    assert all(len(later[w] - expected[w]) == 4 for w in convs)
    await asyncio.to_thread(archive_current_wal, backup_cfg)  # what the server holds reaches the repository
    await owner.close()  # its server goes away

    await asyncio.to_thread(destroy, backup_cfg)
    t0 = time.monotonic()
    restored = await asyncio.to_thread(_lab, "restore", "--time", target.isoformat())
    restore_wall_s = time.monotonic() - t0
    assert restored.returncode == 0, restored.stdout + restored.stderr
    result = json.loads(restored.stdout)
    assert result["audit_ok"] and result["app_ready"], result

    got = {who: await _ids(client, users, who, cid) for who, cid in convs.items()}
    assert got == expected, "exactly the messages written before the target time"
    verify = await asyncio.to_thread(_lab, "audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert json.loads(verify.stdout)["ok"] is True
    TIMINGS.append({"case": destroy.__name__, "backup_s": round(backup_s, 2), "restore_wall_s": round(restore_wall_s, 2),
                    **{k: result[k] for k in ("archive_wal_s", "stop_s", "restore_s", "replay_s", "start_s",
                                              "total_s")}})
    print(json.dumps(TIMINGS[-1]))  # the closing note's numbers (pytest -s)
