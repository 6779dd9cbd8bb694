"""CRS 3.3.4 regression stages (FTW YAML) against stock CRS and the lab's configuration.

Takes every enabled stage whose expected output is a rule id in the log (`log_contains: id "NNNNNN"`),
sends its request byte for byte (`raw_request` and `encoded_request` as given, otherwise the FTW
request line, headers and data), and counts a 403 as blocked, per rule file. The lab must block at
least as many stages as stock CRS at the same paranoia level: its tuning may remove checks only on the
chat message field, which no regression stage uses.

    python -m benchmarks.waf.crs_regression --start-local --json regression.json
    python -m benchmarks.waf.crs_regression --base-url https://localhost --ca-cert ca.pem
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import re
import ssl
import time
import urllib.parse
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks.waf.common import CRS_REGRESSION, add_target_args, pct, print_table, targets, write_json

LOG_ID = re.compile(r'id "(\d+)"')


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


async def send_raw(base_url: str, request: bytes, ctx: ssl.SSLContext | None, timeout: float = 10.0) -> int:
    """Send raw bytes on a fresh connection, return the response status (0: no HTTP answer)."""
    u = urllib.parse.urlsplit(base_url)
    tls = u.scheme == "https"
    port = u.port or (443 if tls else 80)
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(u.hostname, port, ssl=(ctx or ssl.create_default_context()) if tls else None,
                                    server_hostname=u.hostname if tls else None), timeout)
    except (TimeoutError, OSError, ssl.SSLError):
        return 0
    try:
        writer.write(request)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        m = re.match(rb"HTTP/\d(?:\.\d)?\s+(\d{3})", line)
        return int(m.group(1)) if m else 0
    except (TimeoutError, OSError, ssl.SSLError, ValueError):
        return 0
    finally:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 2)
        except (TimeoutError, OSError, ssl.SSLError):
            pass


async def run_stages(base_url: str, stages: list[Stage], concurrency: int, ctx: ssl.SSLContext | None) -> list[int]:
    sem = asyncio.Semaphore(concurrency)

    async def one(s: Stage) -> int:
        if s.request is None:
            return -1
        async with sem:
            return await send_raw(base_url, s.request, ctx)

    return list(await asyncio.gather(*(one(s) for s in stages)))


def summarize(label: str, level: int | None, stages: list[Stage], statuses: list[int]) -> dict[str, Any]:
    per_file: dict[str, Counter[str]] = defaultdict(Counter)
    for s, code in zip(stages, statuses):
        c = per_file[s.rule_file]
        c["stages"] += 1
        c["blocked"] += code == 403
        c["skipped"] += code == -1
        c["no_answer"] += code == 0
    sent = sum(c["stages"] - c["skipped"] for c in per_file.values())
    blocked = sum(c["blocked"] for c in per_file.values())
    return {
        "config": label, "paranoia_level": level, "stages": len(stages), "sent": sent, "blocked": blocked,
        "block_rate": round(blocked / sent, 4) if sent else None,
        "skipped": sum(c["skipped"] for c in per_file.values()),
        "no_answer": sum(c["no_answer"] for c in per_file.values()),
        "per_file": {k: dict(v) for k, v in sorted(per_file.items())},
        "blocked_tests": sorted(s.test for s, c in zip(stages, statuses) if c == 403),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    stages, left_out = load_stages(Path(args.tests))
    ctx = ssl.create_default_context(cafile=args.ca_cert) if args.ca_cert else None
    results = []
    with targets(args) as tgs:
        for t in tgs:
            t0 = time.monotonic()
            statuses = asyncio.run(run_stages(t.base_url, stages, args.concurrency, ctx))
            r = summarize(t.label, t.paranoia_level, stages, statuses)
            r["seconds"] = round(time.monotonic() - t0, 1)
            results.append(r)
    return {"tests": str(args.tests), "left_out": dict(left_out), "results": results}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_target_args(p)
    p.add_argument("--tests", default=str(CRS_REGRESSION), help="FTW tests directory (crs-3.3-regression/tests)")
    p.add_argument("--per-file", action="store_true", help="print the per-rule-file table too")
    args = p.parse_args()
    data = run(args)
    res = data["results"]
    print(f"CRS regression stages expecting a rule id: {res[0]['stages'] if res else 0}; left out: {data['left_out']}")
    print_table(["config", "PL", "sent", "blocked", "rate", "skipped", "no answer", "s"],
                [[r["config"], r["paranoia_level"] or "-", r["sent"], r["blocked"], pct(r["blocked"], r["sent"]),
                  r["skipped"], r["no_answer"], r["seconds"]] for r in res])
    if args.per_file and res:
        files = sorted(res[0]["per_file"])
        heads = [f"{r['config']}-PL{r['paranoia_level']}" for r in res]
        print_table(["rule file", "stages"] + heads,
                    [[f, res[0]["per_file"][f]["stages"]] + [r["per_file"][f]["blocked"] for r in res] for f in files])
    write_json(args.json_out, data)


if __name__ == "__main__":
    main()
