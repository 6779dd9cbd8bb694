"""Measure the guard: per-corpus rates, calibration, speed, model size, load time and memory.

Usage::

    python -m app.ai.guard.eval.measure [--corpora DIR] [--json FILE]

Prints a summary and (with ``--json``) writes every number. Speed is measured here, never asserted in
tests: CPU time per message (this thread's: what the guard costs a uvicorn worker) and wall time. Per kind of development text (``dataset``: injection, context-dependent, long and short
legitimate prompts) it reports "flagged or blocked" (``caught`` for injections) and "blocked":

* ``heldout``: the 20 % held-out split re-scored with the evaluation model fitted on the other 80 % only
  (``guard-linear-eval80.json.gz``): prompts that model never saw;
* ``group_cv``: the nested group-aware cross-validation stored by ``train.py`` (training split);
* ``dev_full``: the shipped model on all development texts: it was fitted on them, so a training-set
  number (how the guard treats the corpora today), not a generalization estimate.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from app.ai.guard.dataset import DEFAULT_CORPORA, KINDS, is_heldout, load_samples
from app.ai.guard.guard import Guard
from app.ai.guard.heuristics import scan
from app.ai.guard.model import DEFAULT_MODEL_PATH, EVAL_MODEL_PATH

# The examples of issue 15: everyday questions a new user types first.
EVERYDAY = ["What is TLS?", "What's the capital of Australia?", "What is a JWT?",
            "Can you help me write an email to my boss?"]


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _rates(rows: list[tuple[str, str]]) -> dict[str, Any]:  # (kind, decision)
    out: dict[str, Any] = {}
    for kind in KINDS:
        ds = [d for k, d in rows if k == kind]
        if ds:
            hit = sum(d != "allow" for d in ds)
            blocked = sum(d == "block" for d in ds)
            out[kind] = {"n": len(ds), "flagged_or_blocked": hit, "blocked": blocked,
                         "share": round(hit / len(ds), 4), "blocked_share": round(blocked / len(ds), 4)}
    return out


def _pct(times: list[float], q: float) -> float:
    return round(sorted(times)[min(len(times) - 1, int(len(times) * q))], 2)


def measure_guard(corpora: Path) -> dict[str, Any]:
    gc.collect()
    rss0 = _rss_kb()
    t0, c0 = time.perf_counter(), time.process_time()
    guard = Guard.load(DEFAULT_MODEL_PATH)
    load_ms = (time.perf_counter() - t0) * 1000
    load_cpu_ms = (time.process_time() - c0) * 1000
    rss_model_mb = (_rss_kb() - rss0) / 1024
    eval_guard = Guard.load(EVAL_MODEL_PATH)
    samples = load_samples(corpora)
    rows_all: list[tuple[str, str]] = []
    rows_held: list[tuple[str, str]] = []
    times: dict[str, list[float]] = {"all": [], "short (< 12 words)": [], "long (>= 12 words)": []}
    heur_hits: dict[str, Counter[str]] = {k: Counter() for k in KINDS}
    legit_reasons: Counter[str] = Counter()
    wall: list[float] = []
    for s in samples:
        # CPU time of this thread: on a shared host, wall time mostly measures the neighbours
        t, w = time.thread_time(), time.perf_counter()
        v = guard.evaluate(s.text)
        ms = (time.thread_time() - t) * 1000
        wall.append((time.perf_counter() - w) * 1000)
        times["all"].append(ms)
        times["short (< 12 words)" if len(s.text.split()) < 12 else "long (>= 12 words)"].append(ms)
        rows_all.append((s.kind, v.decision))
        if is_heldout(s.text):
            rows_held.append((s.kind, eval_guard.evaluate(s.text).decision))
        heur_hits[s.kind].update(scan(s.text).codes)
        if s.label == 0 and v.decision != "allow":
            legit_reasons.update(r.split(":")[0] for r in v.reasons)
    data = guard.model.data
    cv = data.metrics.get("cv")
    return {
        "heldout": _rates(rows_held), "group_cv": data.metrics.get("group_cv"), "dev_full": _rates(rows_all),
        "heuristic_hits_by_kind": {k: dict(c) for k, c in heur_hits.items()},
        "legit_flag_reasons": dict(legit_reasons),
        "thresholds": {"flag": guard.flag_threshold, "block": guard.block_threshold},
        "calibration_out_of_fold": cv.get("calibration") if isinstance(cv, dict) else None,
        "everyday_examples": {t: guard.evaluate(t).model_dump() for t in EVERYDAY},
        "model": {"file": DEFAULT_MODEL_PATH.name, "size_mb_gzip": round(DEFAULT_MODEL_PATH.stat().st_size / 1e6, 3),
                  "features": sum(len(m.weights) for m in data.models), "load_ms": round(load_ms, 1),
                  "load_cpu_ms": round(load_cpu_ms, 1),
                  "rss_mb_after_load": round(rss_model_mb, 1)},
        "wall_ms_per_message": {"p50": _pct(wall, 0.5), "p95": _pct(wall, 0.95), "max": round(max(wall), 2)},
        "speed_ms_per_message": {k: {"n": len(v), "mean": round(statistics.fmean(v), 2), "p50": _pct(v, 0.5),
                                     "p95": _pct(v, 0.95), "max": round(max(v), 2)} for k, v in times.items() if v},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Measure the guard on the development corpora")
    ap.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if not (args.corpora / "prompt-injection" / "injections.jsonl").is_file():
        print(f"corpora not found at {args.corpora}", file=sys.stderr)
        return 2
    g = measure_guard(args.corpora)
    for split, what in (("heldout", "eval model, never saw these"), ("group_cv", "nested group CV, training split"),
                        ("dev_full", "shipped model, fitted on these")):
        rates = g[split]["by_kind"] if split == "group_cv" and g[split] else g[split]
        if not rates:
            print(f"guard {split}: not in the model file (train without --no-group-cv)")
            continue
        print(f"guard {split} ({what}): " + "; ".join(
            f"{k} {r['flagged_or_blocked']}/{r['n']} = {r['share']:.1%} (blocked {r['blocked']})" for k, r in rates.items()))
    print(f"guard thresholds: {g['thresholds']}; model {g['model']}")
    print(f"guard CPU ms per message: {g['speed_ms_per_message']}; wall: {g['wall_ms_per_message']}")
    for t, v in g["everyday_examples"].items():
        print(f"  {t!r}: {v['decision']} {v['reasons']}")
    if args.json:
        args.json.write_text(json.dumps(g, indent=2, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
