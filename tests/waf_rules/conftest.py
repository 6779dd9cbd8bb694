"""Fixtures for the WAF tests: the lab definition, corpora and local nginx+ModSecurity instances."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # waf_rules and benchmarks are top-level directories of the repository
    sys.path.insert(0, str(REPO))

from tests.conftest import need
from waf_rules.render import CRS_RULES_DIR, MODSEC_MODULE

CORPORA = REPO / "corpora"


def _require_waf_packages() -> None:
    need(bool(shutil.which("nginx")) or Path("/usr/sbin/nginx").exists(), "nginx (./lab up installs it)")
    need(Path(MODSEC_MODULE).exists(), "libnginx-mod-http-modsecurity (./lab up installs it)")
    need(Path(CRS_RULES_DIR).is_dir(), "modsecurity-crs 3.3.4 (./lab up installs it)")


@pytest.fixture(scope="session")
def lab() -> Any:
    from labdef import load

    return load()


@pytest.fixture(scope="session")
def waf_packages() -> None:
    _require_waf_packages()


@pytest.fixture(scope="session")
def chat_legit() -> Path:
    path = CORPORA / "chat-legit"
    return path


@pytest.fixture(scope="session")
def crs_regression() -> Path:
    path = CORPORA / "crs-3.3-regression" / "tests"
    return path


@pytest.fixture(scope="session")
def waf(lab: Any, waf_packages: None) -> Iterator[Any]:
    """`waf(stock, level, mode=None)` -> a running instance, started once per session and stopped after."""
    from benchmarks.waf.local import start_instance

    running: dict[tuple[bool, int, str | None], Any] = {}

    def get(stock: bool, level: int, mode: str | None = None) -> Any:
        key = (stock, level, mode)
        if key not in running:
            name = f"{'stock' if stock else 'tuned'}-pl{level}{'-' + mode if mode else ''}"
            running[key] = start_instance(lab, name, stock=stock, paranoia_level=level, mode=mode)
        return running[key]

    try:
        yield get
    finally:
        for inst in running.values():
            inst.stop()
