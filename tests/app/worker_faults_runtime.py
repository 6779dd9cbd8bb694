"""Worker runtime of the fault test (SECLAB_WORKER_RUNTIME=tests.app.worker_faults_runtime:build).

Production pieces, test wiring: the real PostgreSQL ReplyStore (`app.crud.worker.make_reply_store`,
reached through the test's TCP proxy so the test can cut PostgreSQL), the real Redis client with the
worker's ACL user, the real token budget, and ONE provider, the llama.cpp server that the test
stops and starts (no deterministic fallback, or a model outage would never show). Short breaker
and provider timeouts keep the run short.
"""

from __future__ import annotations

import os

from app.ai.breaker import CircuitBreaker
from app.ai.budget import TokenBudget
from app.ai.gateway import Gateway, ProviderSlot
from app.ai.output_checks import OutputChecker
from app.ai.providers.openai_compat import OpenAICompatConfig, OpenAICompatProvider, read_api_key
from app.core.config import load_settings
from app.crud.worker import make_reply_store
from app.worker.runtime import Runtime, redis_client

CANARY = "SECLAB-CANARY-faults-0123456789abcdef"


async def build() -> Runtime:
    settings = load_settings()
    redis = redis_client(settings)
    provider = OpenAICompatProvider(OpenAICompatConfig(
        name="llama", model="tiny", base_url=os.environ["TEST_LLAMA_URL"],
        api_key=read_api_key(os.environ["TEST_LLAMA_KEY_FILE"]), timeout_s=5, connect_timeout_s=1,
        max_attempts=1, max_output_tokens=8,
    ))
    system = f"test system prompt {CANARY}"
    gateway = Gateway(
        [ProviderSlot(provider, pseudonymize_pii=False,
                      breaker=CircuitBreaker("llama", failure_threshold=3, reset_timeout_s=0.5))],
        checker=OutputChecker(canary=CANARY, system_prompt=system), system_prompt=system, max_output_tokens=8,
        budget=TokenBudget(redis, per_user_per_hour=10**9, per_tenant_per_hour=10**9),
    )
    return Runtime(gateway=gateway, store=await make_reply_store(settings), redis=redis)
