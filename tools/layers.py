"""The project's layers and the import arrows they forbid, read from the code with `ast` (nothing is run).

One table, used twice: tests/test_import_rules.py fails on a forbidden arrow, tools/archmetrics.py counts
them. From the bottom: the kernel `labdef` (imports nothing of the project); the PKI and the shared
templates' renderers; the app; the engines and black-box tools (IaC, attacks, benchmarks, tools); the
CLI `seclab`, the roof; the tests may import anything. A unit imports only units of a lower or equal rank,
and black-box suites never import the app whatever its rank (they test it from outside, over HTTP).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

RANKS: dict[str, int] = {
    "labdef": 0,
    "pki": 1, "edge": 1, "waf_rules": 1, "monitoring": 1, "logsearch": 1,
    "app": 2,
    "iac": 3, "attacks": 3, "benchmarks": 3, "tools": 3,
    "seclab": 4,
    "tests": 5,
}
"""Rank of each unit (a top-level package). `seclab.keycloak` (Keycloak provisioning and admin-API
convergence, run by the Ansible engine as `python -m seclab.keycloak`) is part of the CLI's roof: it
imports only the kernel, and nothing below the CLI imports it (the TOTP codes `labdef.tokens` needs
are the kernel's own `labdef.totp`)."""

FORBIDDEN_SIDEWAYS: frozenset[tuple[str, str]] = frozenset({("attacks", "app"), ("benchmarks", "app")})
"""Arrows forbidden although they do not run up: attacks and load runs are black-box (HTTP only)."""

KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}
"""(file, imported module) -> why it is allowed for now. An exception whose file is gone is simply unused."""

SKIP_DIRS = {".venv", "__pycache__", "node_modules", ".git", "build", "dist"}


@dataclass(frozen=True)
class Arrow:
    """One import statement from a file of unit `src` to a module of unit `dst`."""

    path: str
    line: int
    src: str
    dst: str
    module: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.src} -> {self.dst} ({self.module})"


def unit_of(module: str) -> str | None:
    """The unit a dotted module name belongs to (None: not the project's, e.g. fastapi)."""
    top = module.split(".", 1)[0]
    return top if top in RANKS else None


def module_of(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    """(line, module) of every import in the file, also inside functions; relative ones resolved.
    `from a import b` yields `a.b` (b may be a module or a name: either way it lives in `a`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_of(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}" if base else alias.name


def python_files(root: Path = ROOT) -> Iterator[Path]:
    """The project's Python files, unit by unit (tests included: they are a unit too)."""
    for top in sorted({u.split(".")[0] for u in RANKS}):
        base = root / top
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*.py")):
            if not SKIP_DIRS.intersection(path.relative_to(root).parts):
                yield path


def is_forbidden(src: str, dst: str) -> bool:
    return src != dst and (RANKS[src] < RANKS[dst] or (src, dst) in FORBIDDEN_SIDEWAYS)


def forbidden_arrows(root: Path = ROOT, *, with_exceptions: bool = False) -> list[Arrow]:
    """Every import that runs back up or sideways into the app; the known exceptions left out unless asked."""
    found: list[Arrow] = []
    for path in python_files(root):
        src = unit_of(module_of(path, root))
        if src is None:
            continue
        rel = path.relative_to(root).as_posix()
        for line, module in imports_of(path, root):
            dst = unit_of(module)
            if dst is None or not is_forbidden(src, dst):
                continue
            if not with_exceptions and any(rel == f and (module == m or module.startswith(m + "."))
                                           for f, m in KNOWN_EXCEPTIONS):
                continue
            found.append(Arrow(rel, line, src, dst, module))
    return found
