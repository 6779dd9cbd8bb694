"""Shared paths and helpers of the web page's tests (web/, the web role's build, the served page)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import labdef

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
SKIP = {"node_modules", ".next", "out"}


def lab() -> labdef.LabDefinition:
    return labdef.load()


def build_dir() -> Path:
    """Where the web role ran `npm ci` (its node_modules serve the page's own tests)."""
    defaults = yaml.safe_load((ROOT / "playbooks" / "roles" / "web" / "defaults" / "main.yml").read_text())
    return Path(defaults["web_build_dir"])


def node_modules() -> Path:
    return build_dir() / "node_modules"


def has_node_modules() -> bool:
    return (node_modules() / ".bin" / "vitest").exists() and shutil.which("node") is not None


@pytest.fixture
def web_copy(tmp_path: Path) -> Path:
    """The worktree's web/ sources with the provisioned node_modules linked in: the tests run on the
    sources as they are now, with the dependencies `npm ci` installed from the committed lockfile."""
    dst = tmp_path / "web"
    shutil.copytree(WEB, dst, ignore=lambda _d, names: [n for n in names if n in SKIP])
    (dst / "node_modules").symlink_to(node_modules())
    return dst


def npx(cwd: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NEXT_TELEMETRY_DISABLED": "1", "CI": "1", "NO_COLOR": "1"}
    return subprocess.run(
        [str(cwd / "node_modules" / ".bin" / args[0]), *args[1:]],
        cwd=cwd, check=False, capture_output=True, text=True, timeout=timeout, env=env,
    )
