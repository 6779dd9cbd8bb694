"""PII detection and per-conversation pseudonymization (pure Python, no FastAPI/DB imports).

``find_pii(text)``, ``Pseudonymizer(mapping).pseudonymize(text) / .restore(answer)``,
``EncryptedMappingStore(redis, key)`` (AES-GCM, TTL) implementing ``MappingStore``.
"""

from app.ai.pii.detect import Finding, Kind, find_pii
from app.ai.pii.pseudonymize import Pseudonymizer, PseudonymMapping
from app.ai.pii.store import EncryptedMappingStore, MappingDecryptError, MappingStore

__all__ = ["EncryptedMappingStore", "Finding", "Kind", "MappingDecryptError", "MappingStore", "PseudonymMapping",
           "Pseudonymizer", "find_pii"]
