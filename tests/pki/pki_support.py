"""Shared constants and readers for the PKI tests (imported by name: tests/pki is on sys.path)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

EXTRA_HOST = "lab.seclab.test"
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
"""A fixed 'now' for tests that move the clock: a fake clock, not sleeping."""


def cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def chain(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())
