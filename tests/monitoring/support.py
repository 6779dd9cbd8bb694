"""Shared paths and helpers of the monitoring tests."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from tests.conftest import need

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `monitoring` is not an installed package (yet): see conftest.py
    sys.path.insert(0, str(REPO))

MONITORING = REPO / "monitoring"
ROLE = REPO / "playbooks" / "roles" / "monitoring"


def tool(name: str) -> str:
    """Path of a Prometheus tool, or skip: `./lab up` installs them (Debian packages prometheus,
    prometheus-alertmanager); on a laptop without them these checks cannot run."""
    path = shutil.which(name)
    need(path is not None, f"{name} (apt-get install prometheus prometheus-alertmanager; `./lab up` does)")
    assert path is not None
    return path
