"""Architecture numbers of the repository, repeatable (issue 12 "Measure"): lines per top-level folder,
imports that run back up (a lower layer importing a higher one, or a forbidden sideways arrow), the ten
longest functions, and the `duplicates` pairs of more than 10 lines.

Run from the repository root: `python tools/archmetrics.py` (only the standard library; `duplicates` is
called when it is on the PATH). The layer order is the one docs/DEVELOPING.md describes and
tests/test_import_rules.py enforces: the kernel `labdef` at the bottom, the CLI `seclab` at the top.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Rank of each unit: a unit may import units of a lower or equal rank (tests may import anything).
RANKS: dict[str, int] = {
    "labdef": 0,
    "pki": 1, "edge": 1, "waf_rules": 1, "monitoring": 1,
    "app": 2, "seclab.idp": 2,
    "iac": 3, "attacks": 3, "benchmarks": 3, "tools": 3,
    "seclab": 4,
    "tests": 5,
}
# Arrows that are forbidden although they do not run up: black-box suites never import the app.
FORBIDDEN_SIDEWAYS = {("attacks", "app"), ("benchmarks", "app")}


def tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    return [ROOT / line for line in out.splitlines() if (ROOT / line).is_file()]


def unit_of(module: str) -> str | None:
    """The layer unit a dotted module name belongs to (None: not the project's)."""
    if module == "seclab.idp" or module.startswith("seclab.idp."):
        return "seclab.idp"
    top = module.split(".", 1)[0]
    return top if top in RANKS else None


def module_of(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every imported project module name (absolute, relative ones resolved) with its line."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError):
        return []
    package = module_of(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            if node.module is None or node.level:
                found.extend((node.lineno, f"{base}.{alias.name}" if base else alias.name)
                             for alias in node.names)
            else:
                found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
    return found


def py_files() -> list[Path]:
    return [p for p in tracked_files() if p.suffix == ".py"]


def lines_per_folder() -> None:
    total: Counter[str] = Counter()
    python: Counter[str] = Counter()
    for path in tracked_files():
        rel = path.relative_to(ROOT)
        top = rel.parts[0] if len(rel.parts) > 1 else "(root)"
        try:
            n = len(path.read_text(encoding="utf-8").splitlines())
        except (UnicodeDecodeError, OSError):
            continue
        total[top] += n
        if path.suffix == ".py":
            python[top] += n
    print("== lines per top-level folder (all text files / Python) ==")
    for top in sorted(total):
        print(f"  {top:12} {total[top]:7} {python[top]:7}")
    print(f"  {'TOTAL':12} {sum(total.values()):7} {sum(python.values()):7}")


def back_up_imports() -> None:
    arrows: Counter[tuple[str, str]] = Counter()
    examples: dict[tuple[str, str], str] = {}
    for path in py_files():
        src = unit_of(module_of(path))
        if src is None or src == "tests":
            continue
        for line, name in imports_of(path):
            dst = unit_of(name)
            if dst is None or dst == src:
                continue
            if RANKS[src] < RANKS[dst] or (src, dst) in FORBIDDEN_SIDEWAYS:
                arrows[(src, dst)] += 1
                examples.setdefault((src, dst), f"{path.relative_to(ROOT)}:{line} {name}")
    print("== imports that run back up (or forbidden sideways) ==")
    print(f"  arrows (unit -> unit): {len(arrows)}; import statements: {sum(arrows.values())}")
    for (src, dst), n in sorted(arrows.items()):
        print(f"  {src} -> {dst}: {n} (e.g. {examples[(src, dst)]})")


def longest_functions(count: int = 10) -> None:
    sizes: list[tuple[int, str]] = []
    for path in py_files():
        rel = path.relative_to(ROOT)
        if rel.parts[0] == "tests":
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                sizes.append((size, f"{rel}:{node.lineno} {node.name}"))
    sizes.sort(reverse=True)
    print(f"== the {count} longest functions (project code, tests excluded) ==")
    for size, where in sizes[:count]:
        print(f"  {size:4}  {where}")


def duplicate_pairs() -> None:
    print("== duplicates pairs of more than 10 lines (duplicates --min-lines 11) ==")
    if shutil.which("duplicates") is None:
        print("  (duplicates is not on the PATH)")
        return
    out = subprocess.run(["duplicates", "--min-lines", "11", "--most", "200", "--seconds", "120"],
                         cwd=ROOT, capture_output=True, text=True).stdout
    for line in out.splitlines():
        print("  " + line)


def main() -> int:
    lines_per_folder()
    back_up_imports()
    longest_functions()
    duplicate_pairs()
    return 0


if __name__ == "__main__":
    sys.exit(main())
