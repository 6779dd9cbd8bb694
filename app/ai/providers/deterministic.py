"""The deterministic local provider: a STAND-IN with no model, used until the AI issue lands.

Why it exists: the API, tests and load runs need replies that are always available, fast and
reproducible. The reply is derived from a hash of the conversation and says that it is a stand-in.
It never echoes the prompt, so it cannot reflect injected markup back to a client.
"""

from __future__ import annotations

import hashlib

from app.ai.providers.base import ChatMessage, Completion

_PHRASES = (
    "Here is a short answer.",
    "That is a good question.",
    "Let me think about that.",
    "I can help with that.",
    "Noted.",
)


class DeterministicProvider:
    name = "local"
    model = "deterministic-stand-in"

    def __init__(self, name: str = "local", model: str = "echo-1") -> None:
        self.name = name
        self.model = model

    async def generate(self, messages: list[ChatMessage]) -> Completion:
        h = hashlib.sha256()
        for m in messages:
            h.update(m.role.encode() + b"\0" + m.content.encode("utf-8", "replace") + b"\0")
        digest = h.hexdigest()
        phrase = _PHRASES[int(digest[:8], 16) % len(_PHRASES)]
        content = f"[deterministic stand-in {digest[:12]}] {phrase} (no language model answered this message.)"
        prompt_tokens = sum(len(m.content.split()) for m in messages)
        return Completion(
            content=content,
            provider=self.name,
            model=self.model,
            prompt_tokens=prompt_tokens,
            completion_tokens=len(content.split()),
        )
