"""False positives of the WAF on real chat prompts: block rate, the lab's edge or tuning vs stock CRS.

Every chat-legit prompt is sent the way the app receives it: `POST /api/v1/conversations/{id}/messages`
with `{"content": text}`, a bearer token and a JSON content type. A 403 waf-blocked is a WAF block; a
413 is the body limit (lab.yml limits.body_max_bytes) refusing an oversized prompt by design, counted apart.

Against the lab's edge (--base-url) the token is a real one of a lab user (labdef/tokens.py) and the
conversation id is a fixed random UUID that exists nowhere: the app answers 404 after the WAF let the
request through, so nothing is stored and no model runs, while the WAF sees exactly a real message
post. Requests are paced below the edge's limit_req and its own 429s retried (benchmarks/waf/live.py).

    python -m benchmarks.waf.falsepositives --start-local --json fp.json
    python -m benchmarks.waf.falsepositives --base-url https://localhost --ca-cert /etc/seclab/pki/ca/ca-bundle.crt \
        --levels 2,1 --json waf-fp.json        # the edge (switched to PL1 for its run) + stock locally
    ./lab waf fp --levels 1,2 --json waf-fp.json   # the same, from the lab CLI
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from benchmarks.waf.common import (
    CHAT_LEGIT,
    FAKE_BEARER,
    MESSAGE_PATH,
    Answer,
    Outcome,
    Target,
    add_target_args,
    measure,
    pct,
    print_table,
    problem_of,
    rule_file,
    ssl_context,
    targets,
    write_json,
)
from benchmarks.waf.live import TokenSource

NO_SUCH_CONVERSATION = str(uuid.uuid5(uuid.NAMESPACE_URL, "seclab:waf-benchmark:no-such-conversation"))
"""The message route's id on the edge: a well-formed id of no conversation (app 404, nothing stored)."""


def load_prompts(corpus: Path = CHAT_LEGIT) -> list[dict[str, Any]]:
    """prompts.jsonl and code-heavy.jsonl (a subset of it), de-duplicated by text; `code` marks the subset."""
    seen: dict[str, dict[str, Any]] = {}
    for name in ("prompts.jsonl", "code-heavy.jsonl"):
        path = corpus / name
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8").split("\n"):
            if not line.strip():
                continue
            row = json.loads(line)
            entry = seen.setdefault(row["text"], {"text": row["text"], "source": row.get("source", ""), "code": False})
            if name == "code-heavy.jsonl" or row.get("kinds"):
                entry["code"] = True
    return list(seen.values())


async def post_prompts(
    target: Target, prompts: list[dict[str, Any]], concurrency: int = 4, verify: Any = True,
    token: TokenSource | None = None,
) -> list[Outcome]:
    """POST each prompt as a chat message to one target; the outcome of each, in order."""
    conv = NO_SUCH_CONVERSATION if target.kind == "edge" else str(uuid.UUID(int=0x5EC1AB))
    url = target.base_url + MESSAGE_PATH.format(id=conv)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(verify=verify, timeout=60, limits=limits) as client:
        async def send(i: int, rid: str) -> Answer:
            bearer = await token.bearer() if token else FAKE_BEARER
            headers = {"Authorization": f"Bearer {bearer}", "Accept": "application/json", "X-Request-ID": rid,
                       "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) seclab-bench/0.1"}
            if target.kind == "local":
                # The edge's host name, as real clients send it: a numeric Host (127.0.0.1:port) would
                # add CRS 920350's score to every request of a local instance and nothing on the edge.
                headers["Host"] = "localhost"
            try:
                r = await client.post(url, json={"content": prompts[i]["text"]}, headers=headers)
            except httpx.HTTPError:
                return Answer(0)
            try:
                problem = problem_of(r.json()) if r.status_code >= 400 else None
            except ValueError:
                problem = None
            retry = r.headers.get("retry-after")
            return Answer(r.status_code, problem, float(retry) if retry and retry.isdigit() else None)

        return await measure(target, len(prompts), send, concurrency)


async def send_prompts(
    base_url: str, prompts: list[dict[str, Any]], concurrency: int = 4, verify: Any = True
) -> list[int]:
    """POST each prompt to a local instance; the status codes in order (0 = transport error)."""
    outs = await post_prompts(Target("local", None, None, base_url), prompts, concurrency, verify)
    return [o.status for o in outs]


def summarize(target: Target, prompts: list[dict[str, Any]], outs: list[Outcome], seconds: float) -> dict[str, Any]:
    """Counts for all prompts and the code-heavy subset, and the rules (and rule files) behind the blocks."""
    rules: Counter[str] = Counter()
    files: Counter[str] = Counter()
    blocked_idx = [i for i, o in enumerate(outs) if o.verdict == "waf-blocked"]
    for i in blocked_idx:
        ids = set(outs[i].rules) - {"949110", "980130"}  # the anomaly-score verdicts, not causes
        rules.update(ids)
        files.update({rule_file(r) for r in ids})

    def counts(idx: list[int]) -> dict[str, Any]:
        v = Counter(outs[i].verdict for i in idx)
        too_large = sum(1 for i in idx if outs[i].status == 413)
        measured = v["waf-blocked"] + v["passed"]
        v["edge-refused"] -= too_large  # the body limit, counted apart
        return {"prompts": len(idx), "too_large_413": too_large, "measured": measured,
                "blocked_403": v["waf-blocked"], "block_rate": round(v["waf-blocked"] / measured, 4) if measured else None,
                "passed": v["passed"],
                "other": {k: c for k, c in v.items() if k not in ("waf-blocked", "passed") and c > 0}}

    all_idx = list(range(len(prompts)))
    return {
        "config": target.label, "target": target.kind, "paranoia_level": target.paranoia_level,
        "base_url": target.base_url, "paced_per_s": round(target.rate, 2) if target.rate else None,
        "all": counts(all_idx), "code_heavy": counts([i for i in all_idx if prompts[i]["code"]]),
        "verdicts": dict(Counter(o.verdict for o in outs)),
        "retried_429": sum(o.attempts - 1 for o in outs),
        "seconds": round(seconds, 1), "rules_in_blocks": dict(rules.most_common(25)),
        "rule_files_in_blocks": dict(files.most_common()),
        "log_errors": target.logs.errors() if target.logs else {},
        "blocked_examples": [prompts[i]["text"][:160] for i in blocked_idx[:10]],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    prompts = load_prompts(Path(args.corpus))
    if not prompts:
        raise SystemExit(f"no prompts under {args.corpus}")
    results = []
    with targets(args) as tgs:
        for t in tgs:
            token = TokenSource(t.lab, args.user) if t.kind == "edge" else None
            verify = ssl_context(args.ca_cert) if t.kind == "edge" else True
            t0 = time.monotonic()
            outs = asyncio.run(post_prompts(t, prompts, args.concurrency, verify, token))
            results.append(summarize(t, prompts, outs, time.monotonic() - t0))
    return {"corpus": str(args.corpus), "unique_prompts": len(prompts), "results": results}


def add_args(p: argparse.ArgumentParser) -> None:
    add_target_args(p)
    p.add_argument("--corpus", default=str(CHAT_LEGIT), help="chat-legit directory (prompts.jsonl, code-heavy.jsonl)")
    p.add_argument("--user", default="alice", help="lab user whose real token is sent to --base-url (default alice)")


def print_results(data: dict[str, Any]) -> None:
    rows = []
    for r in data["results"]:
        a, c = r["all"], r["code_heavy"]
        rows.append([r["config"], r.get("target", "local"), r["paranoia_level"] or "-", a["measured"], a["blocked_403"],
                     pct(a["blocked_403"], a["measured"]), pct(c["blocked_403"], c["measured"]),
                     a["too_large_413"], sum(a["other"].values()), r.get("retried_429", 0), r["seconds"]])
    print(f"chat-legit: {data['unique_prompts']} unique prompts ({data['corpus']})")
    print_table(["config", "target", "PL", "measured", "blocked", "block rate", "code-heavy", "413 (size)", "other",
                 "429 retried", "s"], rows)
    files = sorted({f for r in data["results"] for f in r.get("rule_files_in_blocks", {})})
    if files:
        print("\nprompts blocked, by rule file of the matched rules (a prompt can count in several files):")
        print_table(["rule file"] + [f"{r['config']}-PL{r['paranoia_level']}" for r in data["results"]],
                    [[f] + [r.get("rule_files_in_blocks", {}).get(f, 0) for r in data["results"]] for f in files])
    for r in data["results"]:
        if r["rules_in_blocks"]:
            top = ", ".join(f"{k}:{v}" for k, v in list(r["rules_in_blocks"].items())[:12])
            print(f"  {r['config']} PL{r['paranoia_level']} rules in blocks: {top}")
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
