"""False positives of the WAF on real chat prompts: block rate, stock CRS vs the lab's tuning.

Every chat-legit prompt is sent the way the app receives it: `POST /api/v1/conversations/{id}/messages`
with `{"content": text}`, a bearer token and a JSON content type. A 403 is a WAF block; a 413 is the
body limit (lab.yml limits.body_max_bytes) refusing an oversized prompt by design, counted apart.

    python -m benchmarks.waf.falsepositives --start-local --json fp.json
    python -m benchmarks.waf.falsepositives --base-url https://localhost --ca-cert /etc/seclab/pki/ca.pem
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
    Target,
    add_target_args,
    pct,
    print_table,
    ssl_context,
    targets,
    write_json,
)
from benchmarks.waf.local import rule_ids_by_request


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


async def send_prompts(
    base_url: str, prompts: list[dict[str, Any]], concurrency: int = 4, verify: Any = True
) -> list[int]:
    """POST each prompt as a chat message; return the status codes in order (0 = transport error)."""
    sem = asyncio.Semaphore(concurrency)
    conv = str(uuid.UUID(int=0x5EC1AB))
    headers = {"Authorization": f"Bearer {FAKE_BEARER}", "Accept": "application/json",
               "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) seclab-bench/0.1"}
    url = base_url + MESSAGE_PATH.format(id=conv)
    statuses: list[int] = [0] * len(prompts)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(verify=verify, timeout=60, limits=limits) as client:
        async def one(i: int) -> None:
            async with sem:
                try:
                    r = await client.post(url, json={"content": prompts[i]["text"]}, headers=headers)
                    statuses[i] = r.status_code
                    if r.status_code == 403:
                        try:
                            prompts[i].setdefault("_rid", {})[base_url] = r.json().get("request_id")
                        except ValueError:
                            pass
                except httpx.HTTPError:
                    statuses[i] = 0

        await asyncio.gather(*(one(i) for i in range(len(prompts))))
    return statuses


def summarize(target: Target, prompts: list[dict[str, Any]], statuses: list[int], seconds: float) -> dict[str, Any]:
    """Counts for all prompts and the code-heavy subset, plus the rules behind the blocks (local only)."""
    ids = rule_ids_by_request(target.instance) if target.instance else {}
    rules: Counter[str] = Counter()
    blocked_idx = [i for i, s in enumerate(statuses) if s == 403]
    for i in blocked_idx:
        rid = prompts[i].get("_rid", {}).get(target.base_url)
        for r in set(ids.get(rid or "", [])):
            if r not in ("949110", "980130"):
                rules[r] += 1

    def counts(idx: list[int]) -> dict[str, Any]:
        st = Counter(statuses[i] for i in idx)
        measured = len(idx) - st[413]
        return {"prompts": len(idx), "too_large_413": st[413], "measured": measured, "blocked_403": st[403],
                "block_rate": round(st[403] / measured, 4) if measured else None,
                "passed_2xx": sum(v for k, v in st.items() if 200 <= k < 300),
                "other": {str(k): v for k, v in st.items() if k not in (403, 413) and not 200 <= k < 300}}

    all_idx = list(range(len(prompts)))
    return {
        "config": target.label, "paranoia_level": target.paranoia_level, "base_url": target.base_url,
        "all": counts(all_idx), "code_heavy": counts([i for i in all_idx if prompts[i]["code"]]),
        "seconds": round(seconds, 1), "rules_in_blocks": dict(rules.most_common(25)),
        "blocked_examples": [prompts[i]["text"][:160] for i in blocked_idx[:10]],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    prompts = load_prompts(Path(args.corpus))
    if not prompts:
        raise SystemExit(f"no prompts under {args.corpus}")
    results = []
    with targets(args) as tgs:
        for t in tgs:
            t0 = time.monotonic()
            statuses = asyncio.run(send_prompts(t.base_url, prompts, args.concurrency, ssl_context(args.ca_cert)))
            results.append(summarize(t, prompts, statuses, time.monotonic() - t0))
    return {"corpus": str(args.corpus), "unique_prompts": len(prompts), "results": results}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_target_args(p)
    p.add_argument("--corpus", default=str(CHAT_LEGIT), help="chat-legit directory (prompts.jsonl, code-heavy.jsonl)")
    args = p.parse_args()
    data = run(args)
    rows = []
    for r in data["results"]:
        a, c = r["all"], r["code_heavy"]
        rows.append([r["config"], r["paranoia_level"] or "-", a["measured"], a["blocked_403"],
                     pct(a["blocked_403"], a["measured"]), pct(c["blocked_403"], c["measured"]),
                     a["too_large_413"], sum(a["other"].values()), r["seconds"]])
    print(f"chat-legit: {data['unique_prompts']} unique prompts ({data['corpus']})")
    print_table(["config", "PL", "measured", "blocked", "block rate", "code-heavy", "413 (size)", "other", "s"], rows)
    for r in data["results"]:
        if r["rules_in_blocks"]:
            top = ", ".join(f"{k}:{v}" for k, v in list(r["rules_in_blocks"].items())[:12])
            print(f"  {r['config']} PL{r['paranoia_level']} rules in blocks: {top}")
    write_json(args.json_out, data)


if __name__ == "__main__":
    main()
