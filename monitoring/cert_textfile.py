"""Write `seclab_cert_not_after_seconds{name}` for every PEM certificate in a directory, in the
node exporter's textfile-collector format.

Why: SeclabCertificateExpiresSoon / SeclabCertificateExpired (monitoring/rules/seclab.yml) need the
expiry of the lab's certificates (ASVS 4.0.3 V9.2.1); the node exporter already runs, so its textfile
collector publishes them without another listening port.

    python3 monitoring/cert_textfile.py --cert-dir /etc/seclab/pki/certs --cert-dir /etc/seclab/pki/ca \
        --out /var/lib/prometheus/node-exporter/seclab_certs.prom [--every 3600]

`name` is the file name without `.crt`/`.pem`; chain files (`*.chain.crt`) are skipped (their first
certificate is the leaf, already counted). The output is written to a temporary file and renamed, so
the collector never reads half a file (node exporter docs, textfile collector). Reads public
certificates only: never point it at private keys (they are skipped anyway: no CERTIFICATE block).
Needs `cryptography` (Debian: python3-cryptography).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterable
from datetime import UTC
from pathlib import Path

from cryptography import x509

METRIC = "seclab_cert_not_after_seconds"
ERRORS = "seclab_cert_read_errors"
SUFFIXES = (".crt", ".pem")
_LABEL_ESCAPE = re.compile(r'([\\"])')


def not_after(cert: x509.Certificate) -> float:
    """Expiry as Unix seconds (cryptography < 42 has only the naive UTC attribute)."""
    value = getattr(cert, "not_valid_after_utc", None)
    if value is None:
        value = cert.not_valid_after.replace(tzinfo=UTC)
    return value.timestamp()


def cert_name(path: Path) -> str:
    name = path.name
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _label(value: str) -> str:
    return _LABEL_ESCAPE.sub(r"\\\1", value).replace("\n", "\\n")


def collect(directories: Iterable[Path]) -> tuple[dict[str, float], list[str]]:
    """{name: not_after} of the first certificate in each PEM file, and the files that failed."""
    found: dict[str, float] = {}
    errors: list[str] = []
    for directory in directories:
        if not directory.is_dir():
            errors.append(str(directory))
            continue
        for path in sorted(directory.iterdir()):
            if not path.is_file() or not path.name.endswith(SUFFIXES):
                continue
            if path.name == "chain.crt" or path.name.endswith(".chain.crt"):
                continue  # leaf/intermediate + issuer: the first certificate is counted on its own
            try:
                data = path.read_bytes()
                if b"-----BEGIN CERTIFICATE-----" not in data:
                    continue
                found[cert_name(path)] = not_after(x509.load_pem_x509_certificate(data))
            except (OSError, ValueError):
                errors.append(str(path))
    return found, errors


def render(found: dict[str, float], errors: list[str]) -> str:
    lines = [
        f"# HELP {METRIC} Expiry of a lab certificate (notAfter), Unix seconds.",
        f"# TYPE {METRIC} gauge",
    ]
    lines += [f'{METRIC}{{name="{_label(n)}"}} {int(v)}' for n, v in sorted(found.items())]
    lines += [
        f"# HELP {ERRORS} Certificate files or directories that could not be read on the last run.",
        f"# TYPE {ERRORS} gauge",
        f"{ERRORS} {len(errors)}",
    ]
    return "\n".join(lines) + "\n"


def write_atomic(out: Path, text: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # public data: expiry dates of public certificates
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write certificate expiry metrics for the textfile collector."
    )
    parser.add_argument(
        "--cert-dir", action="append", type=Path, required=True, help="directory of PEM files (repeatable)"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="*.prom file in the textfile-collector directory"
    )
    parser.add_argument(
        "--every",
        type=float,
        default=0,
        help="repeat every N seconds (run under the process manager; 0: once)",
    )
    args = parser.parse_args(argv)
    while True:
        found, errors = collect(args.cert_dir)
        write_atomic(args.out, render(found, errors))
        for err in errors:
            sys.stderr.write(f"cert_textfile: cannot read {err}\n")
        if args.every <= 0:
            return 0
        time.sleep(args.every)


if __name__ == "__main__":
    raise SystemExit(main())
