"""Fixtures for the monitoring tests: the default lab definition, the rendered configs, the tools.

`monitoring` is not (yet) an installed package (pyproject's packages.find does not include it), so
the repository root is put on sys.path here.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from monitoring import render  # noqa: E402
from seclab import labdef  # noqa: E402

MONITORING = REPO / "monitoring"
ROLE = REPO / "playbooks" / "roles" / "monitoring"


def tool(name: str) -> str:
    """Path of a Prometheus tool, or skip: `./lab up` installs them (Debian packages prometheus,
    prometheus-alertmanager); on a laptop without them these checks cannot run."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (apt-get install prometheus prometheus-alertmanager; `./lab up` does)")
    return path


@pytest.fixture(scope="session")
def lab_vars() -> dict[str, Any]:
    return labdef.as_vars(labdef.load(labdef.DEFAULT_PATH))


@pytest.fixture()
def rendered(tmp_path: Path, lab_vars: dict[str, Any]) -> Path:
    render.write_all(tmp_path, lab_vars)
    return tmp_path
