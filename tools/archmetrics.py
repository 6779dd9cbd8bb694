"""Architecture numbers of the repository, repeatable (issue 12 "Measure"): lines per top-level folder,
imports that run back up (a lower layer importing a higher one, or a forbidden sideways arrow), the ten
longest functions, and the `duplicates` pairs of more than 10 lines.

Run: `.venv/bin/python tools/archmetrics.py [--root CHECKOUT]` (Python 3.12+, standard library only;
`duplicates` is called when it is on the PATH). `--root` measures another checkout (e.g. a worktree of an
older commit) with today's rules. The layers are tools/layers.py, which tests/test_import_rules.py enforces.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: `python tools/archmetrics.py`
    sys.path.insert(0, str(ROOT))

from tools.layers import forbidden_arrows


def tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    return [ROOT / line for line in out.splitlines() if (ROOT / line).is_file()]


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
    arrows = forbidden_arrows(ROOT, with_exceptions=True)
    by_pair: Counter[tuple[str, str]] = Counter((a.src, a.dst) for a in arrows)
    print("== imports that run back up (or sideways into the app), known exceptions included ==")
    print(f"  arrows (unit -> unit): {len(by_pair)}; import statements: {len(arrows)}")
    for (src, dst), n in sorted(by_pair.items()):
        first = next(a for a in arrows if (a.src, a.dst) == (src, dst))
        print(f"  {src} -> {dst}: {n} (e.g. {first.path}:{first.line} {first.module})")


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
                         cwd=ROOT, capture_output=True, text=True, check=False).stdout
    for line in out.splitlines():
        print("  " + line)


def main() -> int:
    global ROOT
    if len(sys.argv) == 3 and sys.argv[1] == "--root":
        ROOT = Path(sys.argv[2]).resolve()
    lines_per_folder()
    back_up_imports()
    longest_functions()
    duplicate_pairs()
    return 0


if __name__ == "__main__":
    sys.exit(main())
