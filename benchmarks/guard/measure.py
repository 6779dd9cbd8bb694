"""Measure the AI safety layer: guard catch/false-positive rates, PII recall per kind, and speed.

Usage::

    python -m benchmarks.guard.measure [--corpora DIR] [--json FILE] [--pii-samples N]

Prints a summary and (with ``--json``) writes every number. Speed is measured here, never asserted in
tests. "flagged" means decision flag or block. ``dev_full`` and speed use the shipped model (fitted on
all development data, so ``dev_full`` is a training-set number, not a generalization estimate);
``heldout`` re-scores the 20 % held-out split with the evaluation model fitted on the other 80 % only
(``guard-linear-eval80.json.gz``); ``model_metrics.cv`` holds the cross-validated numbers.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from app.ai.guard import get_guard
from app.ai.guard.guard import Guard
from app.ai.guard.model import EVAL_MODEL_PATH
from app.ai.guard.train import DEFAULT_CORPORA, is_heldout, load_corpora
from app.ai.pii import Pseudonymizer, find_pii
from app.ai.pii.detect import steuer_id_ok

LOCALES = ["en_US", "en_GB", "de_DE", "fr_FR", "nl_NL", "es_ES", "it_IT"]
STRUCTURED = ("EMAIL", "PHONE", "IBAN", "CARD", "IP", "NATIONAL_ID")


def _rates(rows: list[tuple[int, str, str]]) -> dict[str, Any]:
    att = [d for label, d, _ in rows if label == 1]
    leg = [d for label, d, _ in rows if label == 0]
    by_cat: dict[str, list[int]] = {}
    for label, d, cat in rows:
        if label:
            k = cat.split("/")[0]
            by_cat.setdefault(k, [0, 0])
            by_cat[k][0] += d != "allow"
            by_cat[k][1] += 1
    return {
        "attacks": len(att), "legit": len(leg),
        "catch_rate": round(sum(d != "allow" for d in att) / max(1, len(att)), 4),
        "attacks_blocked_rate": round(sum(d == "block" for d in att) / max(1, len(att)), 4),
        "legit_flagged_rate": round(sum(d != "allow" for d in leg) / max(1, len(leg)), 4),
        "legit_blocked_rate": round(sum(d == "block" for d in leg) / max(1, len(leg)), 4),
        "catch_by_category": {k: f"{c}/{n}" for k, (c, n) in sorted(by_cat.items())},
    }


def measure_guard(corpora: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    guard = get_guard()
    load_ms = (time.perf_counter() - t0) * 1000
    eval_guard = Guard.load(EVAL_MODEL_PATH)
    texts, labels, cats = load_corpora(corpora)
    rows_all, rows_held, times = [], [], []
    reasons: Counter[str] = Counter()
    for text, label, cat in zip(texts, labels, cats):
        t = time.perf_counter()
        v = guard.evaluate(text)
        times.append((time.perf_counter() - t) * 1000)
        row = (label, v.decision, cat)
        rows_all.append(row)
        if is_heldout(text):
            rows_held.append((label, eval_guard.evaluate(text).decision, cat))
        if label == 0 and v.decision != "allow":
            reasons.update(r.split(":")[0] + ":" + r.split(":")[1] if r.startswith("heuristic") else "classifier"
                           for r in v.reasons)
    times.sort()
    return {
        "dev_full": _rates(rows_all), "heldout": _rates(rows_held),
        "legit_flag_reasons": dict(reasons),
        "thresholds": {"flag": guard.flag_threshold, "block": guard.block_threshold},
        "model_metrics": guard.model.data.metrics,
        "eval_model_cv": eval_guard.model.data.metrics["cv"],
        "speed_ms": {"load": round(load_ms, 1), "mean": round(statistics.fmean(times), 2),
                     "p50": round(times[len(times) // 2], 2), "p95": round(times[int(len(times) * 0.95)], 2),
                     "max": round(times[-1], 2), "n": len(times)},
    }


def _steuer(rng: random.Random) -> str:
    body = str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(9))
    return next(body + c for c in "0123456789" if steuer_id_ok(body + c))


def measure_pii(n: int, corpora: Path) -> dict[str, Any]:
    from faker import Faker

    fakers = {loc: Faker(loc) for loc in LOCALES}
    for i, f in enumerate(fakers.values()):
        f.seed_instance(4242 + i)
    rng = random.Random(4242)
    gens = {
        "EMAIL": lambda f, loc: f.email(), "PHONE": lambda f, loc: f.phone_number(),
        "IBAN": lambda f, loc: f.iban(), "CARD": lambda f, loc: f.credit_card_number(),
        "IP": lambda f, loc: f.ipv4() if rng.random() < 0.5 else f.ipv6(),
        "NATIONAL_ID": lambda f, loc: _steuer(rng) if loc == "de_DE" else (f.nif() if loc == "es_ES" else f.ssn()),
    }
    recall: dict[str, Any] = {}
    times: list[float] = []
    for kind, gen in gens.items():
        hit = 0
        misses: list[str] = []
        for i in range(n):
            loc = LOCALES[i % len(LOCALES)]
            value = gen(fakers[loc], loc)
            text = f"Hello, please note {value} for the file."
            s = text.index(value)
            t = time.perf_counter()
            found = find_pii(text)
            times.append((time.perf_counter() - t) * 1000)
            if any(f.kind == kind and f.start <= s and f.end >= s + len(value) - 1 for f in found):
                hit += 1
            elif len(misses) < 5:
                misses.append(value)
        recall[kind] = {"recall": round(hit / n, 4), "n": n, "missed_examples": misses}
    # precision sanity: structured hits on legit prompts (they contain few real identifiers)
    legit_hits: Counter[str] = Counter()
    n_legit = n_with_hit = 0
    pseudo_ms: list[float] = []
    path = corpora / "chat-legit" / "prompts.jsonl"
    if path.is_file():
        for line in path.read_text(encoding="utf-8").split("\n"):
            if not line.strip():
                continue
            text = json.loads(line)["text"]
            n_legit += 1
            t = time.perf_counter()
            found = find_pii(text)
            Pseudonymizer().pseudonymize(text)
            pseudo_ms.append((time.perf_counter() - t) * 1000 / 2)
            kinds = {f.kind for f in found if f.kind in STRUCTURED}
            legit_hits.update(kinds)
            n_with_hit += bool(kinds)
    return {
        "recall_by_kind": recall,
        "legit_prompts": n_legit, "legit_prompts_with_structured_hit": n_with_hit,
        "legit_structured_hits_by_kind": dict(legit_hits),
        "speed_ms": {"find_pii_short_mean": round(statistics.fmean(times), 3),
                     "find_pii_legit_mean": round(statistics.fmean(pseudo_ms), 3) if pseudo_ms else None},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Measure the guard and the PII detectors")
    ap.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--pii-samples", type=int, default=500)
    args = ap.parse_args(argv)
    if not (args.corpora / "prompt-injection" / "injections.jsonl").is_file():
        print(f"corpora not found at {args.corpora}", file=sys.stderr)
        return 2
    result = {"guard": measure_guard(args.corpora), "pii": measure_pii(args.pii_samples, args.corpora)}
    g, p = result["guard"], result["pii"]
    for split, what in (("dev_full", "shipped model, seen in training"), ("heldout", "eval model, unseen")):
        r = g[split]
        print(f"guard {split} ({what}): caught {r['catch_rate']:.1%} of {r['attacks']} attacks "
              f"(blocked {r['attacks_blocked_rate']:.1%}); legit flagged {r['legit_flagged_rate']:.2%} "
              f"of {r['legit']} (blocked {r['legit_blocked_rate']:.2%})")
    for name, cv in (("shipped (100 %)", g["model_metrics"]["cv"]), ("eval (80 %)", g["eval_model_cv"])):
        print(f"guard CV {name}: caught {cv['cv_catch']:.1%} of {cv['n_attacks']}, legit flagged "
              f"{cv['cv_legit_flagged']:.2%} of {cv['n_legit']} (out-of-fold, with heuristics)")
    print(f"guard held-out by category (eval model): {g['heldout']['catch_by_category']}")
    print(f"guard speed: {g['speed_ms']}")
    print("pii recall: " + ", ".join(f"{k} {v['recall']:.1%}" for k, v in p["recall_by_kind"].items()))
    print(f"pii on legit: {p['legit_prompts_with_structured_hit']} of {p['legit_prompts']} prompts with a "
          f"structured hit {p['legit_structured_hits_by_kind']}; speed {p['speed_ms']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
