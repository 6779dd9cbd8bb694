"""Pack the project's source into a byte-for-byte reproducible tar.gz (runs on the controller).

Why: the runtime role copies one archive and reinstalls only when its checksum changed, so a second
`lab up` is changed=0. Entries are sorted, owned by root, with fixed times and modes; caches,
virtualenvs, VCS data and tests are left out.
Usage: python pack_source.py ROOT OUT ITEM [ITEM...]
"""

from __future__ import annotations

import gzip
import io
import os
import sys
import tarfile
from pathlib import Path

MTIME = 1577836800  # 2020-01-01: fixed, and after 1980 so wheel builds accept the file times
SKIP_DIRS = {"__pycache__", ".git", ".venv", "venv", "tests", ".mypy_cache", ".pytest_cache", ".ruff_cache",
             "build", "dist", "node_modules"}
SKIP_SUFFIXES = (".pyc", ".pyo", ".egg-info", ".swp")


def _files(root: Path, items: list[str]) -> list[Path]:
    out: list[Path] = []
    for item in items:
        p = root / item
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.endswith(SKIP_SUFFIXES))
                out += [Path(dirpath) / f for f in sorted(filenames) if not f.endswith(SKIP_SUFFIXES)]
    return sorted(set(out))


def pack(root: Path, out: Path, items: list[str]) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in _files(root, items):
            info = tarfile.TarInfo(str(path.relative_to(root)))
            data = path.read_bytes()
            info.size, info.mtime, info.uid, info.gid, info.uname, info.gname = len(data), MTIME, 0, 0, "root", "root"
            info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
            tar.addfile(info, io.BytesIO(data))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with open(tmp, "wb") as fh, gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0) as gz:
        gz.write(buf.getvalue())
    tmp.replace(out)


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    pack(Path(sys.argv[1]).resolve(), Path(sys.argv[2]), sys.argv[3:])
