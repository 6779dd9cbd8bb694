"""CRS 3.3.4 regression stages (FTW YAML) against stock CRS and the lab's configuration.

Takes every enabled stage whose expected output is a rule id in the log (`log_contains: id "NNNNNN"`),
sends its request byte for byte (`raw_request` and `encoded_request` as given, otherwise the FTW
request line, headers and data) plus an X-Request-ID header (the same bytes to every target), and counts
a 403 waf-blocked as blocked, per rule file; "expected rule logged" counts stages whose expected rule id
is among the rule ids logged for the request. The lab must block at least as many stages as stock CRS
at the same paranoia level: its tuning may remove checks only on the chat message field, which no
regression stage uses (tests/waf_rules/test_tuning.py asserts it on local instances).

The lab's edge proxies only /api/, /realms/, /healthz and /readyz; every other path is its own 404
before ModSecurity's request-body phase (phase 2, where most CRS rules run). So against --base-url the
stages' request targets are re-rooted under --mount (default /api/v1/crs-regression: the app answers
404, nothing is stored), and the stock instance next to it gets the same re-rooted bytes.

    python -m benchmarks.waf.crs_regression --start-local --json regression.json
    python -m benchmarks.waf.crs_regression --base-url https://localhost --ca-cert /etc/seclab/pki/ca/ca-bundle.crt \
        --levels 2,1 --json waf-crs.json
    ./lab waf crs --levels 1,2 --json waf-crs.json
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import re
import ssl
import time
import urllib.parse
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks.waf.common import (
    CRS_REGRESSION,
    Answer,
    Outcome,
    Target,
    add_target_args,
    measure,
    pct,
    print_table,
    problem_of,
    targets,
    write_json,
)

LOG_ID = re.compile(r'id "(\d+)"')
EDGE_MOUNT = "/api/v1/crs-regression"
_REQUEST_LINE = re.compile(rb"^([A-Za-z]+) (/[^ \r\n]*) (HTTP/\d(?:\.\d)?)(?=\r?\n)")


@dataclass
class Stage:
    """One FTW stage: where it comes from, the rule it expects, and its request bytes (or why not)."""

    rule_file: str
    test: str
    rule_id: str
    request: bytes | None
    skip_reason: str = ""


def _to_bytes(text: str) -> bytes:
    # YAML "\xac" escapes are code points < 256 meant as raw bytes (FTW sends them that way).
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def build_request(inp: dict[str, Any]) -> bytes:
    """The request bytes of one FTW stage input (FTW 1.x semantics, without its network details)."""
    if inp.get("encoded_request"):
        return base64.b64decode(inp["encoded_request"])
    if inp.get("raw_request"):
        raw = inp["raw_request"]
        return _to_bytes("".join(raw) if isinstance(raw, list) else str(raw))
    stop_magic = bool(inp.get("stop_magic", False))
    method = str(inp.get("method", "GET"))
    uri = str(inp.get("uri", "/"))
    version = str(inp.get("version", "HTTP/1.1"))
    headers: dict[str, str] = {str(k): str(v) for k, v in (inp.get("headers") or {}).items()}
    data = inp.get("data")
    body = b""
    if data is not None and data != "":
        text = "\r\n".join(map(str, data)) if isinstance(data, list) else str(data)
        ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
        if not stop_magic:
            if ctype is None:
                ctype = headers["Content-Type"] = "application/x-www-form-urlencoded"
            if ctype == "application/x-www-form-urlencoded" and urllib.parse.unquote(text) == text:
                pairs = urllib.parse.parse_qsl(text, keep_blank_values=True)
                if pairs:
                    text = urllib.parse.urlencode(pairs)
            if ctype.lower().startswith("multipart/"):
                text = re.sub(r"(?<!\r)\n", "\r\n", text)
        body = _to_bytes(text)
        if not stop_magic and not any(k.lower() == "content-length" for k in headers):
            headers["Content-Length"] = str(len(body))
    head = f"{method} {uri} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return _to_bytes(head) + body


def load_stages(root: Path = CRS_REGRESSION) -> tuple[list[Stage], Counter[str]]:
    """Stages expecting a rule id in the log; the counter says what was left out and why."""
    stages: list[Stage] = []
    left_out: Counter[str] = Counter()
    for path in sorted(root.rglob("*.yaml")):
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8", errors="surrogateescape"))
        except yaml.YAMLError:
            left_out["yaml-unparseable-file"] += 1
            continue
        if not isinstance(doc, dict):
            left_out["yaml-not-a-mapping"] += 1
            continue
        if not (doc.get("meta") or {}).get("enabled", True):
            left_out["file-disabled"] += 1
            continue
        for test in doc.get("tests") or []:
            for st in test.get("stages") or []:
                stage = st.get("stage", st)
                out = stage.get("output") or {}
                m = LOG_ID.search(str(out.get("log_contains", "")))
                if not m:
                    left_out["no-log_contains-id"] += 1
                    continue
                try:
                    req: bytes | None = build_request(stage.get("input") or {})
                    reason = ""
                except (ValueError, TypeError, UnicodeError) as exc:
                    req, reason = None, f"cannot build request: {type(exc).__name__}"
                stages.append(Stage(path.parent.name, str(test.get("test_title", "")), m.group(1), req, reason))
    return stages, left_out


def mount(request: bytes, prefix: str) -> bytes:
    """Re-root an origin-form request target under `prefix` (other request lines are left as they are)."""
    m = _REQUEST_LINE.match(request)
    if not prefix or not m:
        return request
    return m.group(1) + b" " + prefix.rstrip("/").encode() + m.group(2) + b" " + m.group(3) + request[m.end():]


def with_request_id(request: bytes, request_id: str) -> bytes:
    """Add `X-Request-ID` right after the request line (a request without a line end is left alone)."""
    end = request.find(b"\n")
    if end < 0:
        return request
    return request[: end + 1] + f"X-Request-ID: {request_id}\r\n".encode() + request[end + 1:]


async def exchange_raw(base_url: str, request: bytes, ctx: ssl.SSLContext | None, timeout: float = 10.0) -> Answer:
    """Send raw bytes on a fresh connection; the status, the problem cause of a small body, Retry-After."""
    u = urllib.parse.urlsplit(base_url)
    tls = u.scheme == "https"
    port = u.port or (443 if tls else 80)
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(u.hostname, port, ssl=(ctx or ssl.create_default_context()) if tls else None,
                                    server_hostname=u.hostname if tls else None), timeout)
    except (TimeoutError, OSError, ssl.SSLError):
        return Answer(0)
    try:
        writer.write(request)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        m = re.match(rb"HTTP/\d(?:\.\d)?\s+(\d{3})", line)
        if not m:
            return Answer(0)
        ans = Answer(int(m.group(1)))
        length = 0
        for _ in range(100):
            h = await asyncio.wait_for(reader.readline(), timeout)
            if h in (b"\r\n", b"\n", b""):
                break
            name, _, value = h.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length" and value.strip().isdigit():
                length = int(value.strip())
            elif name.strip().lower() == "retry-after" and value.strip().isdigit():
                ans.retry_after = float(value.strip())
        if ans.status >= 400 and 0 < length <= 8192:
            try:
                ans.problem = problem_of(json.loads(await asyncio.wait_for(reader.readexactly(length), timeout)))
            except (ValueError, asyncio.IncompleteReadError):
                pass
        return ans
    except (TimeoutError, OSError, ssl.SSLError, ValueError):
        return Answer(0)
    finally:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 2)
        except (TimeoutError, OSError, ssl.SSLError):
            pass


async def send_raw(base_url: str, request: bytes, ctx: ssl.SSLContext | None, timeout: float = 10.0) -> int:
    """The response status of raw bytes (0: no HTTP answer)."""
    return (await exchange_raw(base_url, request, ctx, timeout)).status


async def run_stages(base_url: str, stages: list[Stage], concurrency: int, ctx: ssl.SSLContext | None) -> list[int]:
    """Statuses of every stage, sent unchanged (-1: the stage's request could not be built)."""
    sem = asyncio.Semaphore(concurrency)

    async def one(s: Stage) -> int:
        if s.request is None:
            return -1
        async with sem:
            return await send_raw(base_url, s.request, ctx)

    return list(await asyncio.gather(*(one(s) for s in stages)))


async def measure_stages(target: Target, stages: list[Stage], concurrency: int, ctx: ssl.SSLContext | None,
                         prefix: str = "") -> list[Outcome]:
    """Every stage at one target, with its request id, verdict and logged rule ids."""
    async def send(i: int, rid: str) -> Answer:
        req = stages[i].request
        if req is None:
            return Answer(-1)
        return await exchange_raw(target.base_url, with_request_id(mount(req, prefix), rid), ctx)

    return await measure(target, len(stages), send, concurrency)


def summarize(label: str, level: int | None, stages: list[Stage], outs: list[Outcome], kind: str = "local",
              ) -> dict[str, Any]:
    per_file: dict[str, Counter[str]] = defaultdict(Counter)
    for s, o in zip(stages, outs):
        c = per_file[s.rule_file]
        c["stages"] += 1
        c["blocked"] += o.verdict == "waf-blocked"
        c["passed"] += o.verdict == "passed"
        c["edge_refused"] += o.verdict == "edge-refused"
        c["rate_limited"] += o.verdict == "edge-rate-limited"
        c["skipped"] += o.verdict == "not-sent"
        c["no_answer"] += o.verdict == "no-answer"
        c["unknown"] += o.verdict == "unknown"
        c["expected_rule_logged"] += s.rule_id in o.rules
    keys = ("stages", "blocked", "passed", "edge_refused", "rate_limited", "skipped", "no_answer", "unknown",
            "expected_rule_logged")
    tot = {k: sum(c[k] for c in per_file.values()) for k in keys}
    sent = tot["stages"] - tot["skipped"]
    return {
        "config": label, "target": kind, "paranoia_level": level, "stages": tot["stages"], "sent": sent,
        "blocked": tot["blocked"], "block_rate": round(tot["blocked"] / sent, 4) if sent else None,
        "passed": tot["passed"], "edge_refused": tot["edge_refused"], "rate_limited": tot["rate_limited"],
        "skipped": tot["skipped"], "no_answer": tot["no_answer"], "unknown": tot["unknown"],
        "expected_rule_logged": tot["expected_rule_logged"],
        "retried_429": sum(o.attempts - 1 for o in outs),
        "per_file": {k: {key: v[key] for key in keys} for k, v in sorted(per_file.items())},
        "blocked_tests": sorted(s.test for s, o in zip(stages, outs) if o.verdict == "waf-blocked"),
        # What happened to the rest, to compare configs stage by stage (test title -> verdict).
        "unblocked": {s.test: o.verdict for s, o in zip(stages, outs) if o.verdict != "waf-blocked"},
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    stages, left_out = load_stages(Path(args.tests))
    if args.sample and args.sample < len(stages):
        stages = sorted(random.Random(args.seed).sample(stages, args.sample), key=lambda s: (s.rule_file, s.test))
    ctx = ssl.create_default_context(cafile=args.ca_cert) if args.ca_cert else None
    prefix = args.mount if args.mount is not None else (EDGE_MOUNT if args.base_url else "")
    results = []
    with targets(args) as tgs:
        for t in tgs:
            t0 = time.monotonic()
            outs = asyncio.run(measure_stages(t, stages, args.concurrency, ctx if t.kind == "edge" else None, prefix))
            r = summarize(t.label, t.paranoia_level, stages, outs, t.kind)
            r["seconds"] = round(time.monotonic() - t0, 1)
            r["paced_per_s"] = round(t.rate, 2) if t.rate else None
            r["log_errors"] = t.logs.errors() if t.logs else {}
            results.append(r)
    return {"tests": str(args.tests), "left_out": dict(left_out), "mount": prefix or None,
            "sample": {"size": len(stages), "seed": args.seed} if args.sample else None, "results": results}


def add_args(p: argparse.ArgumentParser) -> None:
    add_target_args(p)
    p.add_argument("--tests", default=str(CRS_REGRESSION), help="FTW tests directory (crs-3.3-regression/tests)")
    p.add_argument("--mount", default=None,
                   help=f"re-root stage request targets under this path (default {EDGE_MOUNT} with --base-url, none locally)")
    p.add_argument("--sample", type=int, default=0, help="measure a random sample of N stages (0: all)")
    p.add_argument("--seed", type=int, default=3304, help="seed of --sample (default 3304)")


def print_results(data: dict[str, Any]) -> None:
    res = data["results"]
    print(f"CRS regression stages expecting a rule id: {res[0]['stages'] if res else 0}; left out: {data['left_out']}"
          + (f"; request targets under {data['mount']}" if data.get("mount") else ""))
    print_table(["config", "target", "PL", "sent", "blocked", "rate", "rule logged", "edge refused", "429 left",
                 "no answer", "unknown", "s"],
                [[r["config"], r.get("target", "local"), r["paranoia_level"] or "-", r["sent"], r["blocked"],
                  pct(r["blocked"], r["sent"]), r.get("expected_rule_logged", "-"), r.get("edge_refused", "-"),
                  r.get("rate_limited", "-"), r["no_answer"], r.get("unknown", "-"), r["seconds"]] for r in res])
    if res:
        files = sorted(res[0]["per_file"])
        print("\nblocked stages per rule file:")
        print_table(["rule file", "stages"] + [f"{r['config']}-PL{r['paranoia_level']}" for r in res],
                    [[f, res[0]["per_file"][f]["stages"]] + [r["per_file"].get(f, {}).get("blocked", 0) for r in res]
                     for f in files])
    for r in res:
        if r.get("log_errors"):
            print(f"  {r['config']} PL{r['paranoia_level']} unreadable logs: {r['log_errors']}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_args(p)
    args = p.parse_args()
    data = run(args)
    print_results(data)
    write_json(args.json_out, data)


if __name__ == "__main__":
    main()
