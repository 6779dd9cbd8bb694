"""Shared pieces of the WAF runners: targets (local instances or the lab's edge), sending, verdicts, output.

Why targets are abstract: each runner measures throw-away local instances (`--start-local`, stock CRS
vs the lab's tuned config side by side) and/or the lab's running edge (`--base-url`, with stock CRS at
the same paranoia level started locally next to it), with one code path for sending and counting.
Every request carries its own X-Request-ID, so its verdict and matched rule ids are read from the
target's logs by that id (the edge keeps a boring client id as its correlation id: edge/nginx.conf.j2).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.waf.live import Pacer, WafLogs, default_rate, deployed_level, deployed_paranoia, verdict
from benchmarks.waf.local import REPO, WafInstance, start_instance
from waf_rules.render import CRS_RULES_DIR

CORPORA = REPO / "corpora"
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
    """One WAF to measure: a label, a base URL, its logs, and (if local) the instance for CPU figures."""

    label: str
    stock: bool | None
    paranoia_level: int | None
    base_url: str
    instance: WafInstance | None = None
    kind: str = "local"  # "local" (throw-away instance) or "edge" (the lab's running edge)
    logs: WafLogs | None = None
    rate: float | None = None  # requests per second (edge: below its limit_req), None: unpaced
    lab: Any = None


def add_target_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base-url", help="measure the lab's running edge, e.g. https://localhost (stock CRS "
                   "at the same level is started locally next to it unless --no-stock)")
    p.add_argument("--ca-cert", help="CA certificate to verify --base-url (the lab CA)")
    p.add_argument("--start-local", action="store_true",
                   help="start local nginx+ModSecurity instances (stock and tuned) on 127.0.0.1:18080-18099")
    p.add_argument("--levels", default=None,
                   help="paranoia levels (default 1,2 for --start-local; the deployed level for --base-url: other "
                        "levels switch the deployed edge for the run, under the provisioning lock)")
    p.add_argument("--configs", default="stock,tuned", help="configs for --start-local (default stock,tuned)")
    p.add_argument("--no-stock", action="store_true", help="with --base-url: no local stock CRS next to the edge")
    p.add_argument("--rate", type=float, default=None,
                   help="requests/s against --base-url (default 80%% of lab.yml per_address_per_minute)")
    p.add_argument("--lab-file", help="lab.yml to read (default: SECLAB_LAB_FILE or the repository's)")
    p.add_argument("--concurrency", type=int, default=4, help="requests in flight (default 4)")
    p.add_argument("--json", dest="json_out", help="write the results as JSON to this file")


def ssl_context(ca_cert: str | None) -> ssl.SSLContext | bool:
    if ca_cert:
        return ssl.create_default_context(cafile=ca_cert)
    return True


def load_lab(path: str | None) -> Any:
    from labdef import load

    return load(Path(path) if path else None)


def _levels(text: str | None) -> list[int]:
    return [int(x) for x in (text or "").split(",") if x.strip()]


def _local(lab: Any, cfg: str, level: int) -> Iterator[Target]:
    inst = start_instance(lab, f"{cfg}-pl{level}", stock=(cfg == "stock"), paranoia_level=level)
    try:
        yield Target(cfg, cfg == "stock", level, inst.base_url, inst, "local", WafLogs.of_instance(inst), None, lab)
    finally:
        inst.stop()


@contextmanager
def targets(args: argparse.Namespace) -> Iterator[Iterator[Target]]:
    """Yield an iterator of targets; local instances are started one at a time and always stopped.

    With --base-url: per level, the edge ("edge", switched to the level if it is not the deployed one,
    the deployed level first so the switched window is short) then stock CRS locally at that level.
    """
    if not args.start_local and not args.base_url:
        sys.exit("give --start-local or --base-url URL")
    lab = load_lab(args.lab_file)

    def gen() -> Iterator[Target]:
        if args.base_url:
            from attacks.edge_waf import waf_conf_dir

            deployed = deployed_level(waf_conf_dir(lab)) or lab.edge.waf.paranoia_level
            levels = sorted(_levels(args.levels) or [deployed], key=lambda lv: lv != deployed)
            rate = args.rate or default_rate(lab)
            for level in levels:
                with deployed_paranoia(lab, level):
                    yield Target("edge", None, level, args.base_url.rstrip("/"), None, "edge", WafLogs.of_edge(lab),
                                 rate, lab)
                if not args.no_stock:
                    yield from _local(lab, "stock", level)
            return
        for level in _levels(args.levels) or [1, 2]:
            for cfg in [c.strip() for c in args.configs.split(",") if c.strip()]:
                yield from _local(lab, cfg, level)

    yield gen()


@dataclass
class Answer:
    """What one request got back: status (0 no HTTP answer, -1 not sent), problem cause, Retry-After."""

    status: int
    problem: str | None = None
    retry_after: float | None = None


@dataclass
class Outcome:
    """One item's result at one target: its verdict, the matched rule ids, and how many tries it took."""

    verdict: str
    status: int
    request_id: str
    rules: list[str] = field(default_factory=list)
    attempts: int = 1


def problem_of(body: Any) -> str | None:
    """`waf-blocked` from {"type": "urn:seclab:problem:waf-blocked", ...}."""
    t = body.get("type") if isinstance(body, dict) else None
    return t.removeprefix("urn:seclab:problem:") if isinstance(t, str) and t.startswith("urn:seclab:problem:") else None


async def measure(
    target: Target, n: int, send: Callable[[int, str], Awaitable[Answer]], concurrency: int, max_tries: int = 4,
) -> list[Outcome]:
    """Send items 0..n-1 (paced for the edge), read verdicts by request id, retry the edge's own 429s.

    An edge 429 (limit_req, no upstream in the access log) says nothing about the WAF: the item is sent
    again after the longest Retry-After, up to `max_tries` times; what is still limited stays
    `edge-rate-limited` and is reported, never counted as passed or blocked.
    """
    run = uuid.uuid4().hex[:8]
    pacer = Pacer(target.rate)
    sem = asyncio.Semaphore(concurrency)
    answers: dict[int, tuple[str, Answer, int]] = {}

    async def one(i: int, attempt: int) -> None:
        rid = f"wafbench-{run}-{target.label}-pl{target.paranoia_level or 0}-{i}-{attempt}"
        async with sem:
            await pacer.wait()
            answers[i] = (rid, await send(i, rid), attempt)

    pending = list(range(n))
    outcomes: dict[int, Outcome] = {}
    for attempt in range(1, max_tries + 1):
        await asyncio.gather(*(one(i, attempt) for i in pending))
        await asyncio.sleep(0.3 if target.kind == "edge" else 0.1)  # the last log lines are written
        access, rules = target.logs.read() if target.logs else ({}, {})
        logged = bool(target.logs and target.logs.access and not target.logs.access.error)
        retry: list[int] = []
        wait = 0.0
        for i in pending:
            rid, ans, tries = answers[i]
            v = verdict(ans.status, ans.problem, access.get(rid), target.kind == "local", logged)
            outcomes[i] = Outcome(v, ans.status, rid, rules.get(rid, []), tries)
            if v == "edge-rate-limited":
                retry.append(i)
                wait = max(wait, ans.retry_after or 5.0)
        if not retry:
            break
        pending = retry
        await asyncio.sleep(wait)
    return [outcomes[i] for i in range(n)]


_CRS_FILES: dict[str, str] = {}


def rule_file(rule_id: str) -> str:
    """The rule file a rule id belongs to: CRS files by their 3-digit prefix, the lab's own by range."""
    if not _CRS_FILES:
        for f in sorted(Path(CRS_RULES_DIR).glob("*.conf")):
            parts = f.stem.split("-")
            if len(parts) > 1 and parts[1].isdigit():
                _CRS_FILES.setdefault(parts[1], f.stem)
    if rule_id.startswith("200") and len(rule_id) == 6:
        return "modsecurity.conf (lab engine rules)"
    if rule_id.startswith("948"):
        return "REQUEST-948-SECLAB-MESSAGE-FIELD"
    return _CRS_FILES.get(rule_id[:3], f"other ({rule_id[:3]}xxx)")


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
