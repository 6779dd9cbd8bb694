"""What each running service last loaded: one small state file per service under `<pki>/loaded/`.

Why: `lab pki rotate --no-reload` (or a rotation whose reload failed, or a CRL refresh) leaves
services on older files. `./lab up` (`python -m pki reload`) compares the fingerprint of the files
a service loads at start with the one recorded when it was last (re)loaded, and reloads only when
they differ, so a second run stays changed=0. The files hold fingerprints and serials, nothing secret.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from pydantic import BaseModel, ValidationError

from .layout import PUBLIC_MODE, Layout, write_atomic
from .services import Consumer

STATE_DIR = "loaded"


class LoadedState(BaseModel):
    service: str
    program: str
    fingerprint: str
    serials: dict[str, str]
    action: str
    at: datetime


def state_dir(layout: Layout) -> Path:
    return layout.root / STATE_DIR


def state_path(layout: Layout, service: str) -> Path:
    return state_dir(layout) / f"{service}.json"


def inputs(consumer: Consumer, layout: Layout) -> list[Path]:
    """The files the service loads at start: chains (leaf + intermediate), trust anchor, CRLs."""
    files = [layout.chain(name) for name in consumer.at_start()]
    if consumer.trust:
        files.append(layout.ca_bundle)
    if consumer.crl:
        files.append(layout.crl_bundle)
    return files


def fingerprint(consumer: Consumer, layout: Layout) -> str | None:
    """SHA-256 over those files (path and content); None when nothing is loaded at start."""
    files = inputs(consumer, layout)
    if not files:
        return None
    h = hashlib.sha256()
    for path in files:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = b""
        h.update(str(path.relative_to(layout.root)).encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()


def serials(consumer: Consumer, layout: Layout) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in consumer.at_start():
        try:
            out[name] = format(
                x509.load_pem_x509_certificate(layout.cert(name).read_bytes()).serial_number, "x"
            )
        except (OSError, ValueError):
            out[name] = ""
    return out


def read_state(layout: Layout, service: str) -> LoadedState | None:
    try:
        return LoadedState.model_validate(json.loads(state_path(layout, service).read_text(encoding="utf-8")))
    except (OSError, ValueError, ValidationError):
        return None


def is_current(consumer: Consumer, layout: Layout) -> bool:
    """True when the service's record matches the files on disk (nothing to reload)."""
    fp = fingerprint(consumer, layout)
    if fp is None:
        return True
    st = read_state(layout, consumer.service)
    return st is not None and st.fingerprint == fp


def record(consumer: Consumer, layout: Layout, *, now: datetime | None = None) -> LoadedState | None:
    """Write the service's state after a successful (re)load; atomic, 0644 root (public data)."""
    fp = fingerprint(consumer, layout)
    if fp is None:
        return None
    st = LoadedState(
        service=consumer.service,
        program=consumer.program,
        fingerprint=fp,
        serials=serials(consumer, layout),
        action=consumer.action,
        at=now or datetime.now(UTC),
    )
    d = state_dir(layout)
    d.mkdir(mode=0o755, exist_ok=True)
    write_atomic(
        state_path(layout, consumer.service), st.model_dump_json(indent=2).encode() + b"\n", PUBLIC_MODE
    )
    return st
