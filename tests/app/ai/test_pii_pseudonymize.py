"""Placeholders are stable per conversation, restored in answers, and the stored mapping is encrypted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from app.ai.pii import EncryptedMappingStore, MappingDecryptError, Pseudonymizer, find_pii

CORPORA = Path(__file__).resolve().parents[3] / "corpora"
STRUCTURED = {"EMAIL", "PHONE", "IBAN", "CARD", "IP", "NATIONAL_ID"}


class FakeRedis:
    """Tiny in-memory stand-in for redis.asyncio.Redis (get / set with ex) — unit tests only."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.ttl: dict[str, int | None] = {}

    async def get(self, name: str) -> bytes | None:
        return self.data.get(name)

    async def set(self, name: str, value: bytes, ex: int | None = None) -> bool:
        self.data[name] = value
        self.ttl[name] = ex
        return True


MSG1 = "I'm Dr. Alvarez, mail me at Ana.Alvarez@example.es or call +34 612 345 678; IBAN ES9121000418450200051332."
MSG2 = "Also cc ana.alvarez@example.es and my colleague bob@example.com."


def test_same_value_same_placeholder_and_restore() -> None:
    p = Pseudonymizer()
    out1 = p.pseudonymize(MSG1)
    out2 = p.pseudonymize(MSG2)
    for secret in ("Ana.Alvarez@example.es", "+34 612 345 678", "ES9121000418450200051332", "Alvarez"):
        assert secret not in out1
    assert "<EMAIL_1>" in out1 and "<EMAIL_1>" in out2  # same address, other case -> same placeholder
    assert "<EMAIL_2>" in out2 and "bob@example.com" not in out2
    answer = "I wrote to <EMAIL_1> and &lt;EMAIL_2&gt;; I will call [PHONE_1]. <EMAIL_9> is unknown."
    restored = p.restore(answer)
    assert restored == ("I wrote to Ana.Alvarez@example.es and bob@example.com; I will call +34 612 345 678. "
                        "<EMAIL_9> is unknown.")
    assert p.restore(out1) == MSG1


async def test_store_encrypts_and_roundtrips() -> None:
    redis = FakeRedis()
    key = os.urandom(32)
    store = EncryptedMappingStore(redis, key, ttl_s=600)
    p = Pseudonymizer()
    p.pseudonymize(MSG1 + " " + MSG2)
    await store.save("conv-1", p.mapping)
    (name, blob), = redis.data.items()
    assert name.endswith("conv-1") and redis.ttl[name] == 600
    for original in p.mapping.originals.values():
        assert original.encode() not in blob and original.lower().encode() not in blob
    loaded = await store.load("conv-1")
    assert loaded == p.mapping
    assert Pseudonymizer(loaded).restore("<EMAIL_2>") == "bob@example.com"
    assert await store.load("conv-unknown") is None


async def test_store_wrong_key_or_conversation_fails_closed() -> None:
    redis = FakeRedis()
    p = Pseudonymizer()
    p.pseudonymize(MSG1)
    await EncryptedMappingStore(redis, os.urandom(32)).save("conv-1", p.mapping)
    with pytest.raises(MappingDecryptError):
        await EncryptedMappingStore(redis, os.urandom(32)).load("conv-1")
    # a blob moved to another conversation does not open (conversation id is associated data)
    key = os.urandom(32)
    store = EncryptedMappingStore(redis, key)
    await store.save("conv-a", p.mapping)
    redis.data["seclab:pii:map:conv-b"] = redis.data["seclab:pii:map:conv-a"]
    with pytest.raises(MappingDecryptError):
        await store.load("conv-b")
    with pytest.raises(ValueError):
        EncryptedMappingStore(redis, b"short")


def test_output_check_finds_pii_user_did_not_send() -> None:
    sent = {f.value for f in find_pii(MSG1)}
    answer = "Sure. By the way, Jane's address is jane.roe@example.org and her SSN 123-45-6789."
    leaked = [f for f in find_pii(answer) if f.value not in sent]
    assert {f.kind for f in leaked} >= {"EMAIL", "NATIONAL_ID"}


def test_precision_on_legit_prompts() -> None:
    """Structured PII hits on legit chat prompts stay rare (reported by `python -m app.ai.pii.measure`)."""
    path = CORPORA / "chat-legit" / "prompts.jsonl"
    texts = [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
    hit = sum(any(f.kind in STRUCTURED for f in find_pii(t)) for t in texts)
    assert hit / len(texts) <= 0.05, f"{hit} of {len(texts)} legit prompts have a structured PII hit"
