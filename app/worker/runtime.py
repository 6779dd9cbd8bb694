"""What a worker process needs at run time: the AI gateway, the reply store (PostgreSQL) and Redis.

Built once per worker process, lazily, inside the worker's event loop (async clients belong to the
loop that created them). `SECLAB_WORKER_RUNTIME` names the factory (`module:function`); it is set
only in the worker's root-owned environment file, so it is configuration, not input. Tests point
it at `tests.ai_gateway.worker_runtime:build`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.ai.gateway import Gateway, GatewaySecrets, build_gateway
from app.core.config import Settings, load_settings
from app.core.redis import async_client
from app.worker.store import ReplyStore


@dataclass
class Runtime:
    gateway: Gateway
    store: ReplyStore
    redis: Any  # redis.asyncio.Redis: DLQ, sweeper de-duplication


def redis_client(settings: Settings) -> Any:
    """The worker's async client (DLQ, sweeper de-duplication): longer timeouts than the API's."""
    return async_client(settings, timeout=5, connect_timeout=3)


def gateway_secrets(settings: Settings) -> GatewaySecrets:
    """Secret file paths from the settings (`SECLAB_LLM_CANARY_FILE`, `SECLAB_*_API_KEY_FILE`, `SECLAB_PII_KEY_FILE`)."""
    if not settings.llm_canary_file:
        raise RuntimeError("SECLAB_LLM_CANARY_FILE is not set: the output checks need the deployment's canary")
    return GatewaySecrets(
        canary_file=settings.llm_canary_file,
        openai_api_key_file=settings.openai_api_key_file,
        llama_api_key_file=settings.llama_api_key_file,
        pii_key_file=settings.pii_key_file,
    )


async def build_default() -> Runtime:
    """Production runtime: the PostgreSQL store of `app.crud.worker` under the tenant roles."""
    from app.crud.worker import make_reply_store

    settings = load_settings()
    redis = redis_client(settings)
    gateway = build_gateway(settings.load_lab(), gateway_secrets(settings), redis)
    return Runtime(gateway=gateway, store=await make_reply_store(settings), redis=redis)
