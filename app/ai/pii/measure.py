"""Measure the PII detectors: recall per kind on generated identifiers, hits on legitimate prompts, speed.

Usage::

    python -m app.ai.pii.measure [--corpora DIR] [--samples N] [--json FILE]

Why here: an offline evaluation lives with what it evaluates (moved from the guard's benchmark).
Faker (a dev dependency) generates the identifiers; speed is measured here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

from app.ai.pii import Pseudonymizer, find_pii
from app.ai.pii.detect import steuer_id_ok

DEFAULT_CORPORA = Path(__file__).resolve().parents[3] / "corpora"
LOCALES = ["en_US", "en_GB", "de_DE", "fr_FR", "nl_NL", "es_ES", "it_IT"]
STRUCTURED = ("EMAIL", "PHONE", "IBAN", "CARD", "IP", "NATIONAL_ID")


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
    ap = argparse.ArgumentParser(description="Measure the PII detectors")
    ap.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    p = measure_pii(args.samples, args.corpora)
    print("pii recall: " + ", ".join(f"{k} {v['recall']:.1%}" for k, v in p["recall_by_kind"].items()))
    print(f"pii on legit: {p['legit_prompts_with_structured_hit']} of {p['legit_prompts']} prompts with a "
          f"structured hit {p['legit_structured_hits_by_kind']}; speed {p['speed_ms']}")
    if args.json:
        args.json.write_text(json.dumps(p, indent=2, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
