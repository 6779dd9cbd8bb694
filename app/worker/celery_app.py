"""The Celery application: Redis broker from the app settings, TLS-ready, safe delivery defaults.

    celery -A app.worker.celery_app worker --pool solo --beat ...

Why these settings:
- broker credentials from `SECLAB_REDIS_USER` + `SECLAB_REDIS_PASSWORD_FILE` (a file, never a value
  in the environment: ASVS 4.0.3 V6.4.1); `rediss://` turns on TLS with the lab CA and a client
  certificate (ASVS V9.2.1 TLS to back-end services; Redis TLS docs);
- with `SECLAB_REDIS_SENTINELS`, kombu's `sentinel://` transport asks the sentinels for the current
  primary (`master_name`), over mutual TLS to the sentinels (`sentinel_kwargs`) and to the data node
  (`broker_use_ssl` -> redis-py's SentinelManagedSSLConnection): a failover moves the broker with it;
- `acks_late` + `task_reject_on_worker_lost`: a task is acknowledged only after it finished, so a
  worker killed mid-task leaves it in the queue (at-least-once; the task is idempotent);
- `worker_prefetch_multiplier=1`: a worker does not hoard tasks it may die with;
- `global_keyprefix "seclab:"`: every broker key is under the prefix the Redis ACL grants;
- time limits: no task runs unbounded (OWASP LLM10:2025 unbounded consumption);
- no result backend: results live in PostgreSQL, Redis never holds answers (OWASP LLM02:2025).
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit

from celery import Celery
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.core.config import Settings, env_file_path, load_settings
from app.core.redis import database, sentinel_options, tls_options


class WorkerSettings(BaseSettings):
    """`SECLAB_WORKER_*` settings (same env file as the app); defaults suit the lab."""

    model_config = SettingsConfigDict(env_prefix="SECLAB_WORKER_", extra="ignore", frozen=True)

    max_retries: int = 5
    retry_base_s: float = 2.0
    retry_max_s: float = 120.0
    task_soft_time_limit_s: int = 120
    task_time_limit_s: int = 150
    visibility_timeout_s: int = 600  # > task_time_limit_s: Redis redelivers unacked tasks after this
    sweep_interval_s: float = 60.0
    sweep_older_than_s: float = 120.0
    sweep_batch: int = 200
    dlq_maxlen: int = 10000
    runtime: str = "app.worker.runtime:build_default"  # module:async factory of the Runtime
    queue: str = "seclab.generate"


def load_worker_settings() -> WorkerSettings:
    path = env_file_path()
    if path.is_file():
        return WorkerSettings(_env_file=str(path), _env_file_encoding="utf-8")  # type: ignore[call-arg]
    return WorkerSettings()


def _credentials(settings: Settings) -> str:
    """`user:password@` (URL-quoted) for the settings' ACL user, or "" without one."""
    pw = settings.redis_password()
    if not settings.redis_user and pw is None:
        return ""
    cred = quote(settings.redis_user or "", safe="")
    if pw is not None:
        cred += ":" + quote(pw.get_secret_value(), safe="")
    return cred + "@"


def broker_url(settings: Settings) -> str:
    """The settings' Redis URL with the ACL user and the password from its file, URL-quoted.

    With sentinels: `sentinel://cred@h1:p1/db;sentinel://cred@h2:p2/db;...` (kombu takes every
    `;`-separated URL as a sentinel, and the credentials for the data node from the one in use)."""
    parts = urlsplit(settings.redis_url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError("SECLAB_REDIS_URL must be redis:// or rediss://")
    cred = _credentials(settings)
    if sentinels := settings.redis_sentinel_addresses():
        db = database(settings)
        return ";".join(f"sentinel://{cred}{h}:{p}/{db}" for h, p in sentinels)
    if cred:
        host = parts.hostname or "127.0.0.1"
        netloc = f"{cred}{host}" + (f":{parts.port}" if parts.port else "")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


def sentinel_transport_options(settings: Settings) -> dict[str, object]:
    """kombu's Sentinel options: the primary's name and how to reach the sentinels (ACL user, mTLS)."""
    if not settings.redis_sentinel_addresses():
        return {}
    return {"master_name": settings.redis_master_name,
            "sentinel_kwargs": sentinel_options(settings, timeout=10, connect_timeout=3)}


def make_celery(settings: Settings | None = None, worker: WorkerSettings | None = None, *,
                broker: str | None = None, set_as_current: bool = True) -> Celery:
    """A Celery app with the lab's delivery settings.

    `broker`: an explicit broker URL, used as given (no settings are read then; TLS only from
    `settings` if passed). `set_as_current=False` for one-off publishers (`lab dlq replay`): they
    must not replace the process's current app."""
    worker = worker or load_worker_settings()
    if broker is None:
        settings = settings or load_settings()
        broker = broker_url(settings)
    app = Celery("seclab", broker=broker, include=["app.worker.tasks"], set_as_current=set_as_current)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",  # never pickle: a broker message must not be able to run code (ASVS V5.5.3)
        accept_content=["json"],
        task_default_queue=worker.queue,
        task_soft_time_limit=worker.task_soft_time_limit_s,
        task_time_limit=worker.task_time_limit_s,
        # Bounded socket waits: the API publishes from its request path, a hung Redis must not hang it.
        broker_transport_options={"global_keyprefix": "seclab:", "visibility_timeout": worker.visibility_timeout_s,
                                  "socket_connect_timeout": 3, "socket_timeout": 10},
        broker_connection_retry_on_startup=True,
        worker_send_task_events=True,  # Flower
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
        beat_schedule={
            "sweep-pending": {"task": "seclab.sweep_pending", "schedule": worker.sweep_interval_s},
        },
    )
    if settings is not None:
        app.conf.broker_transport_options.update(sentinel_transport_options(settings))
        if (opts := tls_options(settings)) is not None:
            app.conf.broker_use_ssl = opts
    return app


def make_publisher(broker: str | None = None) -> Celery:
    """A Celery app of its own for a command that only publishes (`lab dlq replay`).

    Same message format as the worker's (json, queue, `seclab:` key prefix: `make_celery`), its own
    connection pool: the shared `celery_app` of this module is never reconfigured, so a command cannot
    redirect what the rest of the process publishes, nor be silently ignored by a pool that already
    connected. `broker`: a URL to use as given; default the worker's settings (ACL user, TLS)."""
    return make_celery(broker=broker, set_as_current=False)


celery_app = make_celery()
