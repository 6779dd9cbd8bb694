"""Shared pieces of the WAF runners: targets (local or remote), corpora, output.

Why targets are abstract: each runner measures either throw-away local instances (`--start-local`,
stock CRS vs the lab's tuned config side by side) or one running edge (`--base-url`, e.g. the real lab
edge with its CA certificate), with the same code path for sending and counting.
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.waf.local import REPO, WafInstance, start_instance

CORPORA = REPO.parent / "shared" / "corpora"
CHAT_LEGIT = CORPORA / "chat-legit"
CRS_REGRESSION = CORPORA / "crs-3.3-regression" / "tests"
MESSAGE_PATH = "/api/v1/conversations/{id}/messages"
# A JWT-shaped bearer token: real chat traffic carries one, so header rules see realistic input.
FAKE_BEARER = (
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImxhYiJ9."
    "eyJzdWIiOiJhbGljZSIsInRlbmFudCI6ImFjbWUiLCJyZWFsbV9hY2Nlc3MiOnsicm9sZXMiOlsidXNlciJdfX0."
    "c2lnbmF0dXJlLW5vdC1jaGVja2VkLWJ5LXRoZS13YWY"
)


@dataclass
class Target:
    """One WAF to measure: a label, a base URL, and (if local) the instance for logs and CPU."""

    label: str
    stock: bool | None
    paranoia_level: int | None
    base_url: str
    instance: WafInstance | None = None


def add_target_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base-url", help="measure a running edge instead, e.g. https://localhost")
    p.add_argument("--ca-cert", help="CA certificate to verify --base-url (the lab CA)")
    p.add_argument("--start-local", action="store_true",
                   help="start local nginx+ModSecurity instances (stock and tuned) on 127.0.0.1:18080-18099")
    p.add_argument("--levels", default="1,2", help="paranoia levels for --start-local (default 1,2)")
    p.add_argument("--configs", default="stock,tuned", help="configs for --start-local (default stock,tuned)")
    p.add_argument("--lab-file", help="lab.yml to read (default: SECLAB_LAB_FILE or the repository's)")
    p.add_argument("--concurrency", type=int, default=4, help="requests in flight (default 4)")
    p.add_argument("--json", dest="json_out", help="write the results as JSON to this file")


def ssl_context(ca_cert: str | None) -> ssl.SSLContext | bool:
    if ca_cert:
        return ssl.create_default_context(cafile=ca_cert)
    return True


def load_lab(path: str | None) -> Any:
    from seclab.labdef import load

    return load(Path(path) if path else None)


@contextmanager
def targets(args: argparse.Namespace) -> Iterator[Iterator[Target]]:
    """Yield an iterator of targets; local instances are started one at a time and always stopped."""
    if not args.start_local and not args.base_url:
        sys.exit("give --start-local or --base-url URL")

    def gen() -> Iterator[Target]:
        if args.base_url:
            yield Target("target", None, None, args.base_url.rstrip("/"))
            return
        lab = load_lab(args.lab_file)
        for level in [int(x) for x in args.levels.split(",") if x.strip()]:
            for cfg in [c.strip() for c in args.configs.split(",") if c.strip()]:
                inst = start_instance(lab, f"{cfg}-pl{level}", stock=(cfg == "stock"), paranoia_level=level)
                try:
                    yield Target(cfg, cfg == "stock", level, inst.base_url, inst)
                finally:
                    inst.stop()

    yield gen()


def write_json(path: str | None, data: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def print_table(headers: list[str], rows: list[list[Any]]) -> None:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, r in enumerate(cells):
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def pct(a: int, b: int) -> str:
    return f"{100.0 * a / b:.1f}%" if b else "n/a"
