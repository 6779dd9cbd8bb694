"""The provider interface every model backend implements (OpenAI, llama.cpp, the deterministic stand-in)."""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict


class ChatMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str


class Completion(BaseModel):
    content: str
    provider: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ProviderError(Exception):
    """The provider could not answer (timeout, refusal, outage): the caller may fall back."""


@runtime_checkable
class Provider(Protocol):
    name: str

    async def generate(self, messages: list[ChatMessage]) -> Completion: ...
