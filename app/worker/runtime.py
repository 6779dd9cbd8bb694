"""What a worker process needs at run time: the AI gateway, the reply store (PostgreSQL) and Redis.

Built once per worker process, lazily, inside the worker's event loop (async clients belong to the
loop that created them). `SECLAB_WORKER_RUNTIME` names the factory (`module:function`); it is set
only in the worker's root-owned environment file, so it is configuration, not input. Tests point
it at `tests.ai_gateway.worker_runtime:build`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from app.ai.gateway import Gateway, GatewaySecrets, build_gateway
from app.core.config import Settings, load_settings
from app.worker.celery_app import tls_options
from app.worker.store import ReplyStore


@dataclass
class Runtime:
    gateway: Gateway
    store: ReplyStore
    redis: Any  # redis.asyncio.Redis: DLQ, sweeper de-duplication


def redis_client(settings: Settings) -> Any:
    """An async Redis client with the ACL user, password file and (rediss://) TLS of the settings."""
    import redis.asyncio as aioredis

    pw = settings.redis_password()
    kwargs: dict[str, Any] = {"username": settings.redis_user, "socket_timeout": 5, "socket_connect_timeout": 3}
    if pw is not None:
        kwargs["password"] = pw.get_secret_value()
    if (opts := tls_options(settings)) is not None:
        kwargs.update(opts)
    return aioredis.Redis.from_url(settings.redis_url, **kwargs)


def _setting(settings: Settings, name: str) -> str | None:
    # Read from Settings once the lead adds the field to app/core/config.py; the env var works until then.
    return getattr(settings, name, None) or os.environ.get(f"SECLAB_{name.upper()}")


def gateway_secrets(settings: Settings) -> GatewaySecrets:
    canary = _setting(settings, "llm_canary_file")
    if not canary:
        raise RuntimeError("SECLAB_LLM_CANARY_FILE is not set: the output checks need the deployment's canary")
    return GatewaySecrets(
        canary_file=canary,
        openai_api_key_file=_setting(settings, "openai_api_key_file"),
        llama_api_key_file=_setting(settings, "llama_api_key_file"),
        pii_key_file=_setting(settings, "pii_key_file"),
    )


async def build_default() -> Runtime:
    """Production runtime: the store comes from `app.crud.worker.make_reply_store(settings)` (lead's part)."""
    from app.crud.worker import make_reply_store  # type: ignore[import-not-found]

    settings = load_settings()
    redis = redis_client(settings)
    gateway = build_gateway(settings.load_lab(), gateway_secrets(settings), redis)
    return Runtime(gateway=gateway, store=await make_reply_store(settings), redis=redis)
