"""Tokens/s and time to first token of the tiny model through the llama.cpp server (streaming).

    python -m app.ai.tinymodel_speed [--runs 10] [--max-tokens 64] [--port 18081] [--json FILE]

Starts its own server (loopback, API key required, config file written the way `lab model add`
writes llama.json) on a free lab test port, measures through the OpenAI SDK (the same protocol the
gateway uses; the server is the STAND-IN for OpenAI), stops it. The numbers describe the lab
host's CPU, not any real model: the point is a baseline for timeouts and budgets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from openai import AsyncOpenAI

from app.ai.tinymodel import write_tiny_model


async def one(client: AsyncOpenAI, max_tokens: int) -> dict[str, float]:
    t0 = time.perf_counter()
    first: float | None = None
    tokens = 0
    stream = await client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "Tell me about network security."}],
        max_tokens=max_tokens, temperature=0.7, stream=True,
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            tokens += 1  # llama-cpp-python streams one token per chunk
            if first is None:
                first = time.perf_counter()
    end = time.perf_counter()
    first = first or end
    gen = end - first
    return {"ttft_ms": (first - t0) * 1000, "tokens": tokens,
            "tokens_per_s": (tokens - 1) / gen if tokens > 1 and gen > 0 else 0.0, "total_ms": (end - t0) * 1000}


async def bench(base: str, key: str, runs: int, max_tokens: int) -> dict[str, object]:
    client = AsyncOpenAI(base_url=base, api_key=key, max_retries=0, timeout=60)
    await one(client, 4)  # warm-up
    results = [await one(client, max_tokens) for _ in range(runs)]
    await client.close()

    def p(xs: list[float], q: float) -> float:
        return sorted(xs)[min(len(xs) - 1, int(q * len(xs)))]

    ttft = [r["ttft_ms"] for r in results]
    tps = [r["tokens_per_s"] for r in results]
    return {"runs": runs, "max_tokens": max_tokens, "ttft_ms_median": round(statistics.median(ttft), 1),
            "ttft_ms_p95": round(p(ttft, 0.95), 1), "tokens_per_s_median": round(statistics.median(tps), 1),
            "tokens_median": statistics.median(r["tokens"] for r in results),
            "total_ms_median": round(statistics.median(r["total_ms"] for r in results), 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--port", type=int, default=18081)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = write_tiny_model(Path(tmp) / "tiny.gguf")
        key = secrets.token_hex(16)
        cfg = Path(tmp) / "llama.json"
        cfg.write_text(json.dumps({"host": "127.0.0.1", "port": args.port, "api_key": key, "models": [
            {"model": str(model), "model_alias": "tiny", "n_ctx": 512, "n_threads": args.threads, "verbose": False}]}))
        cfg.chmod(0o600)
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--config_file", str(cfg)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{args.port}/v1"
        try:
            for _ in range(200):
                try:
                    if httpx.get(base + "/models", headers={"Authorization": f"Bearer {key}"}, timeout=1).is_success:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            unauth = httpx.get(base + "/models", timeout=2).status_code
            out = asyncio.run(bench(base, key, args.runs, args.max_tokens))
            out["unauthenticated_status"] = unauth
        finally:
            proc.terminate()
            proc.wait(10)
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
