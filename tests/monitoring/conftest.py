"""Fixtures for the monitoring tests: the default lab definition and the rendered configs.

`monitoring` is not (yet) an installed package (pyproject's packages.find does not include it), so
support.py puts the repository root on sys.path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import labdef
from monitoring import render

from .support import REPO  # noqa: F401  (sys.path set-up happens on import)


@pytest.fixture(scope="session")
def lab_vars() -> dict[str, Any]:
    return labdef.as_vars(labdef.load(labdef.DEFAULT_PATH))


@pytest.fixture()
def rendered(tmp_path: Path, lab_vars: dict[str, Any]) -> Path:
    render.write_all(tmp_path, lab_vars)
    return tmp_path
