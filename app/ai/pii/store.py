"""Encrypted, expiring storage of pseudonym mappings (one per conversation).

Why: the mapping *is* the personal data; stored in clear it would defeat the pseudonymization. It is
sealed with AES-256-GCM (authenticated encryption, ASVS 4.0.3 V6.2.1/V6.2.5 approved algorithms) under
a key from the lab's secrets, with the conversation id as associated data so that a blob copied to
another conversation fails to open (ASVS V6.2.2 fail on tampering); a fresh 96-bit random nonce per
write (NIST SP 800-38D). Entries expire (TTL) because the mapping is only needed while the conversation
is live (GDPR art. 5(1)(e) storage limitation).
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.ai.pii.pseudonymize import PseudonymMapping

_VERSION = b"\x01"
_NONCE = 12


class MappingDecryptError(Exception):
    """The stored mapping could not be opened (wrong key, other conversation, or tampering)."""


class AsyncKV(Protocol):
    """The subset of ``redis.asyncio.Redis`` the store uses."""

    async def get(self, name: str) -> bytes | None: ...

    async def set(self, name: str, value: bytes, ex: int | None = None) -> object: ...


class MappingStore(Protocol):
    """Load/save a conversation's mapping; implementations must never persist it in clear."""

    async def load(self, conversation_id: str) -> PseudonymMapping | None: ...

    async def save(self, conversation_id: str, mapping: PseudonymMapping, ttl_s: int | None = None) -> None: ...


class EncryptedMappingStore:
    """AES-GCM sealed mappings in a Redis-compatible async key-value store."""

    def __init__(self, client: AsyncKV, key: bytes, *, prefix: str = "seclab:pii:map:", ttl_s: int = 3600) -> None:
        if len(key) not in (16, 24, 32):
            raise ValueError("AES-GCM key must be 16, 24 or 32 bytes (use 32: AES-256)")
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive: mappings must expire")
        self._client = client
        self._aead = AESGCM(key)
        self._prefix = prefix
        self._ttl = ttl_s

    def _name(self, conversation_id: str) -> str:
        return self._prefix + conversation_id

    def seal(self, conversation_id: str, mapping: PseudonymMapping) -> bytes:
        """Encrypt a mapping: version byte | nonce | ciphertext+tag."""
        nonce = os.urandom(_NONCE)
        ct = self._aead.encrypt(nonce, mapping.model_dump_json().encode("utf-8"), conversation_id.encode("utf-8"))
        return _VERSION + nonce + ct

    def open(self, conversation_id: str, blob: bytes) -> PseudonymMapping:
        """Decrypt and validate; any failure raises MappingDecryptError (fail closed)."""
        if len(blob) < 1 + _NONCE + 16 or blob[:1] != _VERSION:
            raise MappingDecryptError("unknown mapping format")
        try:
            plain = self._aead.decrypt(blob[1: 1 + _NONCE], blob[1 + _NONCE:], conversation_id.encode("utf-8"))
        except InvalidTag:
            raise MappingDecryptError("mapping does not authenticate (wrong key or conversation)") from None
        return PseudonymMapping.model_validate_json(plain)

    async def load(self, conversation_id: str) -> PseudonymMapping | None:
        blob = await self._client.get(self._name(conversation_id))
        if blob is None:
            return None
        if isinstance(blob, str):  # a client created with decode_responses=True
            blob = blob.encode("ascii")
        try:
            raw = base64.b64decode(blob, validate=True)
        except (binascii.Error, ValueError):
            raise MappingDecryptError("mapping is not base64") from None
        return self.open(conversation_id, raw)

    async def save(self, conversation_id: str, mapping: PseudonymMapping, ttl_s: int | None = None) -> None:
        # base64 so that clients with or without decode_responses read it back unchanged
        blob = base64.b64encode(self.seal(conversation_id, mapping))
        await self._client.set(self._name(conversation_id), blob, ex=ttl_s or self._ttl)
