"""Fixtures for the lab PKI tests: a lab definition with an extra host name, and a fresh PKI per test.

Everything is generated in pytest's tmp dirs; no key or certificate is committed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from labdef import LabDefinition, load
from pki.ca import EnsureResult, ensure
from pki.layout import Layout
from pki.model import PkiPlan
from pki.plan import build_plan
from tests.pki.pki_support import EXTRA_HOST, T0


@pytest.fixture(scope="session")
def lab() -> LabDefinition:
    base = load()
    data = base.model_dump()
    data["edge"]["host_names"] = ["localhost", EXTRA_HOST]
    return LabDefinition.model_validate(data)


@pytest.fixture(scope="session")
def plan(lab: LabDefinition) -> PkiPlan:
    return build_plan(lab)


@pytest.fixture
def pki_dir(tmp_path: Path, plan: PkiPlan) -> Path:
    d = tmp_path / "pki"
    first = ensure(plan, d)
    assert first.changed and "root" in first.issued
    return d


@pytest.fixture
def layout(pki_dir: Path) -> Layout:
    return Layout(pki_dir)


@pytest.fixture
def first_run(tmp_path: Path, plan: PkiPlan) -> tuple[Path, EnsureResult]:
    d = tmp_path / "pki-t0"
    return d, ensure(plan, d, now=T0)
