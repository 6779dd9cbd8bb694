"""Static checks as part of the suite (issue 11 item 5): `ruff check` and `mypy` on the whole tree.

They run in `./lab test`, so CI and a user's clone see the same verdict; the tool versions are
pinned by minor in pyproject.toml (a new ruff minor may enable new default rules).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, check=False)


def test_ruff_is_clean() -> None:
    proc = _run("ruff", "check", "--output-format", "concise", ".")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]


@pytest.mark.late  # the slowest static check (about 35 s on 2 cores): after the quick feedback
def test_mypy_is_clean() -> None:
    proc = _run("mypy", ".")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
