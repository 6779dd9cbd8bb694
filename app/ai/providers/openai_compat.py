"""One provider class for every OpenAI-compatible chat endpoint: OpenAI itself and the local llama.cpp server.

Why one class: `llama_cpp.server` speaks the OpenAI chat-completions protocol, so the lab exercises
the exact code path that talks to OpenAI against a server it can run offline. In this lab the OpenAI
service itself is NOT reachable: the llama.cpp server (tiny generated model) is the STAND-IN for
OpenAI in tests and benchmarks, and OpenAI's error behaviour (429, 5xx, timeouts) is reproduced with
respx (tests/app/ai/gateway/). Nothing here is specific to either server.

Retries are ours, not the SDK's (`max_retries=0`): exponential backoff with full jitter, on 429, 5xx,
timeouts and connection errors only, at most `max_attempts` attempts, honouring a server's
Retry-After up to `backoff_max_s` (AWS Architecture Blog "Exponential Backoff and Jitter"; OWASP
LLM10:2025 unbounded consumption: bounded attempts and bounded output tokens). Client errors (400,
401, 403, 404, 422) are not retried: repeating them cannot succeed and would only burn quota.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
from openai import AsyncOpenAI
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from app.ai.providers.base import ChatMessage, Completion, ProviderError

log = logging.getLogger("seclab.ai.provider")

PROVIDER_RETRIES = Counter(
    "seclab_ai_provider_retries_total", "Provider attempts that were retried, by reason", ["provider", "reason"]
)


class UpstreamError(ProviderError):
    """A provider call failed after its retries (or at once, for a non-retryable error)."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class OpenAICompatConfig(BaseModel):
    """Settings of one endpoint (built from lab.yml `ai.providers[]` plus the secrets file)."""

    model_config = ConfigDict(frozen=True)

    name: str
    model: str
    base_url: str | None = Field(default=None, description="None: the SDK's default (api.openai.com)")
    api_key: SecretStr
    timeout_s: float = Field(default=30.0, gt=0)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=10)
    backoff_base_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=8.0, ge=0)
    max_output_tokens: int = Field(default=256, ge=1)
    temperature: float = Field(default=0.7, ge=0, le=2)


def read_api_key(path: str | Path) -> SecretStr:
    """API keys come from a 0600 file under paths.secrets, never from lab.yml or the environment (ASVS V6.4.1)."""
    value = Path(path).read_text(encoding="utf-8").strip()
    if not value:
        raise ValueError(f"{path}: empty API key file")
    return SecretStr(value)


def _retry_after(exc: openai.APIStatusError) -> float | None:
    raw = exc.response.headers.get("retry-after") if exc.response is not None else None
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None  # an HTTP-date: fall back to our own backoff


class OpenAICompatProvider:
    """`base.Provider` over `AsyncOpenAI` chat completions (OpenAI, llama.cpp server, any compatible)."""

    def __init__(
        self,
        config: OpenAICompatConfig,
        *,
        http_client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.model = config.model
        self._sleep = sleep
        self._rng = rng or random.SystemRandom()
        self._client = AsyncOpenAI(
            api_key=config.api_key.get_secret_value(),
            base_url=config.base_url,
            timeout=httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s),
            max_retries=0,  # retries are ours: bounded, jittered, counted
            http_client=http_client,
        )

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt `attempt + 1`: full jitter on base * 2^(attempt-1), capped."""
        cap = self.config.backoff_max_s
        if retry_after is not None:
            return min(max(retry_after, 0.0), cap)
        return self._rng.uniform(0, min(cap, self.config.backoff_base_s * 2 ** (attempt - 1)))

    async def generate(self, messages: list[ChatMessage]) -> Completion:
        payload = [{"role": m.role, "content": m.content} for m in messages]
        last: UpstreamError | None = None
        for attempt in range(1, self.config.max_attempts + 1):
            retry_after: float | None = None
            try:
                resp = await self._client.chat.completions.create(
                    model=self.config.model,
                    messages=payload,  # type: ignore[arg-type]
                    max_tokens=self.config.max_output_tokens,  # bounded output (LLM10:2025)
                    temperature=self.config.temperature,
                )
            except openai.APITimeoutError:
                last, reason = UpstreamError(f"{self.name}: timeout", retryable=True), "timeout"
            except openai.APIConnectionError:
                last, reason = UpstreamError(f"{self.name}: connection failed", retryable=True), "connection"
            except openai.APIStatusError as exc:
                retryable = exc.status_code == 429 or exc.status_code >= 500
                # Only the status goes into the error: upstream bodies may echo the prompt (LLM02:2025).
                last = UpstreamError(f"{self.name}: HTTP {exc.status_code}", status=exc.status_code,
                                     retryable=retryable)
                if not retryable:
                    raise last from None
                reason, retry_after = str(exc.status_code), _retry_after(exc)
            else:
                choice = resp.choices[0] if resp.choices else None
                text = (choice.message.content if choice is not None else None) or ""
                usage = resp.usage
                return Completion(
                    content=text,
                    provider=self.name,
                    model=resp.model or self.config.model,
                    prompt_tokens=usage.prompt_tokens if usage else 0,
                    completion_tokens=usage.completion_tokens if usage else 0,
                )
            if attempt < self.config.max_attempts:
                PROVIDER_RETRIES.labels(self.name, reason).inc()
                delay = self.backoff(attempt, retry_after)
                log.warning("provider retry", extra={"provider": self.name, "attempt": attempt, "reason": reason,
                                                     "delay_s": round(delay, 3)})
                await self._sleep(delay)
        assert last is not None
        raise last

    async def aclose(self) -> None:
        await self._client.close()
