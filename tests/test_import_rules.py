"""The layers hold: no import runs back up (app -> CLI, app -> engines, PKI -> app, anything below the
CLI -> CLI, the kernel -> anything of the project) and black-box suites (attacks, benchmarks) never import
the app. The table of layers is tools/layers.py; imports are read with `ast`, nothing is imported."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools import layers

ROOT = Path(__file__).resolve().parent.parent


def test_no_import_runs_back_up() -> None:
    arrows = layers.forbidden_arrows(ROOT)
    assert not arrows, "forbidden imports (see tools/layers.py for the layers):\n" + "\n".join(map(str, arrows))


def test_the_kernel_imports_nothing_of_the_project() -> None:
    outside = [
        (path.relative_to(ROOT).as_posix(), line, module)
        for path in sorted((ROOT / "labdef").rglob("*.py"))
        for line, module in layers.imports_of(path, ROOT)
        if layers.unit_of(module) not in (None, "labdef")
    ]
    assert outside == []


def test_every_project_package_has_a_rank() -> None:
    """A new top-level package must be placed in the layers, or its imports would go unchecked."""
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert packages <= set(layers.RANKS), f"add to tools/layers.py RANKS: {sorted(packages - set(layers.RANKS))}"


def test_known_exceptions_still_exist() -> None:
    """An exception whose import is gone must be deleted from the table, so the table stays honest."""
    all_arrows = layers.forbidden_arrows(ROOT, with_exceptions=True)
    for path, module in layers.KNOWN_EXCEPTIONS:
        if (ROOT / path).exists():
            assert any(a.path == path and (a.module == module or a.module.startswith(module + "."))
                       for a in all_arrows), f"unused exception {path} -> {module}: remove it"


@pytest.mark.parametrize(
    ("unit", "source", "expected"),
    [
        ("app", "from seclab.engines import ansible_engine\n", ("app", "seclab")),
        ("app", "def f():\n    import iac.program\n", ("app", "iac")),
        ("pki", "from app.core.config import Settings\n", ("pki", "app")),
        ("benchmarks", "from app.ai import tinymodel\n", ("benchmarks", "app")),
        ("attacks", "import app.main\n", ("attacks", "app")),
        ("labdef", "from pki import plan\n", ("labdef", "pki")),
        ("iac", "from seclab import cli\n", ("iac", "seclab")),
    ],
)
def test_the_check_catches_a_forbidden_arrow(tmp_path: Path, unit: str, source: str, expected: tuple[str, str]) -> None:
    """The rule can fail: a file with a forbidden import in a throw-away tree is reported."""
    pkg = tmp_path / unit
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "bad.py").write_text(source)
    arrows = layers.forbidden_arrows(tmp_path)
    assert [(a.src, a.dst, a.path) for a in arrows] == [(*expected, f"{unit}/bad.py")]


@pytest.mark.parametrize(
    ("unit", "source"),
    [
        ("app", "import labdef\nfrom pki import plan\n"),
        ("seclab", "from app.main import create_app\nimport iac.program\n"),
        ("iac", "from pki import plan\nfrom labdef.realm import build_realm_export\n"),
        ("app", "from . import sibling\nfrom .deps import x\n"),
    ],
)
def test_downward_arrows_are_allowed(tmp_path: Path, unit: str, source: str) -> None:
    pkg = tmp_path / unit
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "ok.py").write_text(source)
    assert layers.forbidden_arrows(tmp_path) == []
