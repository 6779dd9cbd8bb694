"""`lab dlq list|replay|purge`: the dead-letter stream `seclab:dlq` of the generation worker.

Replay re-enqueues an entry's task and deletes the entry once the broker has accepted it. If the
task fails again it is dead-lettered again as a new entry, so a replay can never lose a message;
and since the task answers a message at most once, replaying twice is harmless. Entries hold ids,
a category and a scrubbed error, never message text (see app/worker/dlq.py).

Redis: `--redis-url` (tests, a remote shell), else the worker's settings from `SECLAB_ENV_FILE`
(default /etc/seclab/app.env: run as root on the lab host, the password file is root/seclab-only).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from labdef.errors import LabError

app = typer.Typer(help="Dead-letter stream of the generation worker (seclab:dlq).", no_args_is_help=True)

RedisOpt = Annotated[str | None, typer.Option("--redis-url", help="default: SECLAB_REDIS_URL / the app settings")]


def _redis(url: str | None) -> Any:
    import redis.asyncio as aioredis

    if url:  # the operator's own URL (credentials in it, if any): nothing of the settings applies
        return aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=3)
    from app.core.config import load_settings
    from app.worker.runtime import redis_client

    return redis_client(load_settings())


async def _with_redis(url: str | None, fn: Any) -> Any:
    client = _redis(url)
    try:
        return await fn(client)
    except OSError as exc:
        raise LabError(f"cannot reach Redis: {exc}") from None
    finally:
        await client.aclose()


@app.command("list")
def list_(
    redis_url: RedisOpt = None,
    count: Annotated[int, typer.Option("--count", min=1, max=10000)] = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show dead letters, oldest first."""
    from app.worker.dlq import dlq_list

    rows = asyncio.run(_with_redis(redis_url, lambda r: dlq_list(r, count)))
    if as_json:
        typer.echo(json.dumps([{"id": i, **e.model_dump()} for i, e in rows], indent=2))
        return
    if not rows:
        typer.echo("dead-letter stream is empty")
        return
    for i, e in rows:
        when = datetime.fromtimestamp(e.failed_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        typer.echo(f"{i}  {when}  {e.category:<10} {e.tenant}/{e.message_id}  attempts={e.attempts}  {e.error}")


@app.command("replay")
def replay(
    entry_ids: Annotated[list[str] | None, typer.Argument(help="stream ids; none with --all")] = None,
    all_: Annotated[bool, typer.Option("--all", help="replay every entry")] = False,
    redis_url: RedisOpt = None,
) -> None:
    """Re-enqueue dead letters; each entry is removed once the broker took its task."""
    from app.worker.celery_app import make_publisher
    from app.worker.dlq import dlq_delete, dlq_list

    if not entry_ids and not all_:
        raise LabError("name entry ids or pass --all")
    # A publisher of its own (same broker and message format as the worker): the shared Celery app
    # of app.worker is never reconfigured by a command.
    publisher = make_publisher(redis_url)

    async def go(r: Any) -> tuple[int, list[str]]:
        wanted = set(entry_ids or [])
        done, failed = 0, []
        for i, e in await dlq_list(r, 10000):
            if not all_ and i not in wanted:
                continue
            try:
                await asyncio.to_thread(publisher.send_task, e.task, args=[e.tenant, e.message_id], retry=False)
            except Exception as exc:  # noqa: BLE001 - kept in the stream and reported
                failed.append(f"{i}: {type(exc).__name__}")
                continue
            await dlq_delete(r, i)
            done += 1
        return done, failed

    try:
        done, failed = asyncio.run(_with_redis(redis_url, go))
    finally:
        publisher.close()  # its broker connections
    typer.echo(f"replayed {done} entr{'y' if done == 1 else 'ies'}")
    if failed:
        raise LabError("not replayed (kept in the stream): " + ", ".join(failed))


@app.command("purge")
def purge(
    yes: Annotated[bool, typer.Option("--yes", help="really drop every entry")] = False,
    redis_url: RedisOpt = None,
) -> None:
    """Drop every dead letter (the messages stay `failed` in PostgreSQL)."""
    from app.worker.dlq import dlq_purge

    if not yes:
        raise LabError("purge drops every entry: pass --yes")
    n = asyncio.run(_with_redis(redis_url, dlq_purge))
    typer.echo(f"purged {n} entr{'y' if n == 1 else 'ies'}")
