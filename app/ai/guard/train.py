"""Train the guard's classifiers from the lab corpora and export them in a version-independent form.

Usage::

    python -m app.ai.guard.train [CORPORA_DIR] [--out-dir app/ai/guard/model] [--no-group-cv]

CORPORA_DIR defaults to ``<repo>/corpora``; the samples and their kinds (injection, context-dependent,
long and short legitimate prompts) are ``dataset.load_samples``. Context-dependent PurpleLlama cases are
never fitted on (``dataset`` explains the rule and why).

Three steps, all by the same procedure (``fit_guard``) on different data:

1. *Group-aware cross-validation* on the 80 % training split (``group_cv``, skipped with
   ``--no-group-cv``): 5 folds by group (``dataset.near_duplicate_groups``), the whole procedure fitted
   inside each fold and the run-time ``Guard`` deciding on the fold it never saw. Its per-kind rates go
   into both model files' ``metrics.group_cv``: the estimate for unseen prompts, and the floors of
   ``tests/app/ai/test_guard.py``.
2. ``guard-linear-eval80.json.gz`` (the *evaluation* model): fitted on the 80 % training split only,
   then scored once on the 20 % held-out split (by SHA-256 of the text) with the pure-Python guard;
   per-kind rates and per-text decisions go into ``metrics.heldout``. The held-out split is never used
   for fitting, model selection or thresholds.
3. ``guard-linear.json.gz`` (the *shipped* model, loaded by ``get_guard()``): fitted on 100 % of the
   development corpora (more data generalizes better to prompts never seen). It has seen the held-out
   split, so its metadata copies the evaluation model's numbers under ``heldout_of_eval80_model``.

``fit_guard`` (deterministic, seed 1337), given samples:
* features: word 1-2-grams and character 3-5-grams (across word boundaries) of the normalized text,
  one TF-IDF + logistic-regression sub-model per kind (C per kind, chosen by cross-validation on the
  80 % split: ``eval/README.md``);
* 5-fold stratified *group* cross-validation gives out-of-fold scores per sub-model; their mean and
  standard deviation standardize each sub-model, the mean of the standardized scores is Platt-calibrated
  (so a score of 0.5 is even odds on the development data), a plain short message (fewer than 12 words,
  no rule matched) shifted to its group's base rate, and the thresholds are chosen on these
  out-of-fold probabilities combined with the heuristics exactly as the guard combines them:
  flag: the lowest threshold at which *each* legitimate corpus (long, short) has <= 2 % minus 1.5
  standard errors flagged; block: classifier alone <= 0.2 % of legitimate prompts, and >= 0.85;
* the hand-written supplements (``dataset.SUPPLEMENTS``) are added to every fit as legitimate, never
  to validation, thresholds or reported metrics;
* the sub-models are then refitted on all the samples given.
scikit-learn is needed here only (dev dependency); scoring uses ``app.ai.guard.model``.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import platform
import sys
import time
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from app.ai.guard.dataset import (
    DEFAULT_CORPORA,
    KINDS,
    Sample,
    is_heldout,
    load_samples,
    load_supplements,
    near_duplicate_groups,
    text_id,
)

SEED = 1337
FOLDS = 5
FP_BUDGET = 0.02  # the target: <= 2 % of legitimate prompts flagged, in each legitimate corpus
# Flag threshold: out-of-fold legit flagged <= budget - 1.5 standard errors of a rate at the budget
# measured on n legit prompts of that corpus (n = 1090 -> 1.37 %, n = 1475 -> 1.45 %): the margin
# covers the sampling noise of the threshold estimate, so unseen prompts of the same kind stay under it.
FP_MARGIN_SE = 1.5
TARGET_FP_BLOCK = 0.002  # block threshold: classifier alone, <= 0.2 % of validation legit blocked
MIN_BLOCK = 0.85
LEGIT_KINDS = ("legit-long", "legit-short")
# Sub-models: feature kind -> (regularization C, max vocabulary); chosen by group CV on the 80 % split.
SUBMODELS: dict[str, tuple[float, int]] = {"char": (40.0, 60000), "word": (16.0, 40000)}
# A message of fewer words in which no rule matched gets its group's prior (model.py, schema 3); the
# same cut decides that the classifier alone may flag but not block a short message (guard.py).
SHORT_WORDS = 12
CALIBRATION_BINS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0001)


@dataclass
class Prepared:
    """Samples with their features computed once: tokenized docs per sub-model, heuristic hits, groups."""

    samples: list[Sample]
    kinds: np.ndarray  # str per sample
    y: np.ndarray  # 1 attack, 0 legit, -1 context-dependent (never fitted on)
    docs: dict[str, list[list[str]]]
    heur: np.ndarray  # bool: a heuristic matched
    groups: np.ndarray
    n_words: np.ndarray


def featurize(texts: list[str]) -> dict[str, list[list[str]]]:
    from app.ai.guard.model import FEATURIZERS, prepare

    low = [prepare(t) for t in texts]
    return {kind: [FEATURIZERS[kind](s) for s in low] for kind in SUBMODELS}  # type: ignore[index]


def prepare_samples(samples: list[Sample]) -> Prepared:
    from app.ai.guard.heuristics import scan

    y = np.array([-1 if s.label is None else s.label for s in samples])
    return Prepared(samples, np.array([s.kind for s in samples]), y, featurize([s.text for s in samples]),
                    np.array([bool(scan(s.text).codes) for s in samples]),
                    np.array(near_duplicate_groups(samples)), np.array([len(s.text.split()) for s in samples]))


def _identity(doc: list[str]) -> list[str]:
    return doc


def _fit(docs: list[list[str]], y: np.ndarray, c: float, max_features: int) -> tuple[Any, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(analyzer=_identity, min_df=2, sublinear_tf=True, max_features=max_features,
                          smooth_idf=True, norm="l2", dtype=np.float64)
    x = vec.fit_transform(docs)
    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=5000, random_state=SEED)
    clf.fit(x, y)
    return vec, clf


def group_folds(y: np.ndarray, groups: np.ndarray, k: int = FOLDS) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified (attack / legit / context) group k-fold, seeded."""
    from sklearn.model_selection import StratifiedGroupKFold

    sgk = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=SEED)
    return [(a, b) for a, b in sgk.split(np.zeros(len(y)), y, groups)]


def legit_target(n: int) -> float:
    """The flag budget for one legitimate corpus of n prompts (see FP_MARGIN_SE)."""
    return FP_BUDGET - FP_MARGIN_SE * float(np.sqrt(FP_BUDGET * (1 - FP_BUDGET) / max(1, n)))


def _platt(z: np.ndarray, y: np.ndarray) -> tuple[float, float] | None:
    """Platt scaling (a, b) of scores ``z``; None without both classes to fit on."""
    from sklearn.linear_model import LogisticRegression

    if len(set(y.tolist())) < 2:
        return None
    lr = LogisticRegression(C=1e6, max_iter=1000).fit(z.reshape(-1, 1), y)
    return float(lr.coef_[0][0]), float(lr.intercept_[0])


def plain_short_shift(y: np.ndarray, plain_short: np.ndarray) -> float:
    """Log-odds shift from the base rate of attacks overall to that of plain short messages.

    Label-shift correction (Saerens et al., 2002): p'/(1-p') = p/(1-p) * [pi'/(1-pi')] / [pi/(1-pi)],
    pi' with add-one smoothing, so two attacks in 1600 messages are not read as none. Never > 0.
    """
    pi = float(y.mean())
    n, k = int(plain_short.sum()), int(y[plain_short].sum())
    pi_short = (k + 1) / (n + 2)
    return round(min(0.0, float(np.log(pi_short / (1 - pi_short)) - np.log(pi / (1 - pi)))), 6)


def calibration_table(p: np.ndarray, y: np.ndarray) -> list[dict[str, float]]:
    """Reliability of the calibrated probability: per bin, mean predicted vs observed attack share."""
    rows = []
    for lo, hi in pairwise(CALIBRATION_BINS):
        m = (p >= lo) & (p < hi)
        if m.any():
            rows.append({"lo": lo, "hi": round(min(hi, 1.0), 2), "n": int(m.sum()),
                         "mean_p": round(float(p[m].mean()), 4), "attack_share": round(float(y[m].mean()), 4)})
    return rows


def fit_guard(prep: Prepared, idx: np.ndarray, trained_on: str, extra: dict[str, list[list[str]]],
              log: Any = sys.stderr) -> tuple[Any, dict[str, Any]]:
    """Cross-validate (by group), calibrate, choose thresholds and fit the sub-models on ``idx``.

    Context-dependent samples in ``idx`` are left out. ``extra`` (tokenized supplements) is added to every
    fit as legitimate, never validated on. Returns a ``LinearModelFile`` whose ``metrics.cv`` holds the
    out-of-fold numbers, and the fitted scikit-learn objects per kind (for the parity check).
    """
    import sklearn

    from app.ai.guard.model import SCHEMA, LinearModelFile

    idx = idx[prep.y[idx] >= 0]
    y, kinds, heur = prep.y[idx], prep.kinds[idx], prep.heur[idx]
    folds = group_folds(y, prep.groups[idx])
    zs, subs = [], []
    cv_report: dict[str, Any] = {}
    for kind, (c, max_features) in SUBMODELS.items():
        kd = [prep.docs[kind][i] for i in idx]
        ex = extra.get(kind, [])
        y_ex = np.zeros(len(ex), dtype=y.dtype)
        oof = np.zeros(len(y))
        for fit_idx, val_idx in folds:
            vec, clf = _fit([kd[i] for i in fit_idx] + ex, np.concatenate([y[fit_idx], y_ex]), c, max_features)
            oof[val_idx] = clf.decision_function(vec.transform([kd[i] for i in val_idx]))
        mean, std = float(oof.mean()), float(oof.std()) or 1.0
        zs.append((oof - mean) / std)
        vec, clf = _fit(kd + ex, np.concatenate([y, y_ex]), c, max_features)
        coef = clf.coef_[0]
        subs.append({"kind": kind, "intercept": round(float(clf.intercept_[0]), 6),
                     "scale": (round(mean, 6), round(std, 6)),
                     "weights": {f: (round(float(vec.idf_[j]), 6), round(float(coef[j]), 6))
                                 for f, j in vec.vocabulary_.items()},
                     "_sk": (vec, clf)})
        cv_report[f"{kind}_C"] = c
        print(f"  [{trained_on}] {kind}: C={c:g}, {len(vec.vocabulary_)} features", file=log)
    oof_z = np.mean(zs, axis=0)

    # Platt calibration on out-of-fold scores (never on the data the score was fitted on); plain short
    # messages (no rule matched) get their group's prior by a label-shift correction (model.py, schema 3).
    platt = _platt(oof_z, y)
    if platt is None:
        raise SystemExit("calibration needs attacks and legitimate prompts")
    a, b = platt
    plain_short = (prep.n_words[idx] < SHORT_WORDS) & ~heur
    shift = plain_short_shift(y, plain_short)
    p_oof = 1 / (1 + np.exp(-(a * oof_z + b + np.where(plain_short, shift, 0.0))))

    # Thresholds on validation (OOF) scores, combined with heuristic hits as the guard combines them.
    targets = {k: legit_target(int((kinds == k).sum())) for k in LEGIT_KINDS if (kinds == k).any()}
    cands = sorted(np.unique(np.round(p_oof, 4)))
    flag_thr = 0.99
    for t in cands:
        flagged = (p_oof >= t) | heur
        if all(float(flagged[kinds == k].mean()) <= target for k, target in targets.items()):
            flag_thr = float(t)
            break
    block_thr = MIN_BLOCK
    for t in cands:
        if t >= MIN_BLOCK and float((p_oof >= t)[y == 0].mean()) <= TARGET_FP_BLOCK:
            block_thr = float(t)
            break
    flag_thr = min(flag_thr, block_thr)
    flagged = (p_oof >= flag_thr) | heur
    cv_report.update({
        "folds": f"{FOLDS}-fold stratified group", "n_hard_negatives": len(extra.get("word", [])),
        "flag_threshold": flag_thr, "block_threshold": block_thr,
        "target_legit_flagged": {k: round(v, 4) for k, v in targets.items()},
        "flagged_by_kind": {k: rate(flagged[kinds == k]) for k in KINDS if (kinds == k).any()},
        "catch_classifier_only": rate((p_oof >= flag_thr)[y == 1]),
        "catch_heuristics_only": rate(heur[y == 1]),
        "calibration": calibration_table(p_oof, y),
        "calibration_plain_short": calibration_table(p_oof[plain_short], y[plain_short]),
        "n_plain_short": {"attacks": int(y[plain_short].sum()), "legit": int((y[plain_short] == 0).sum())},
    })
    summary = ", ".join(f"{k} {v['share']:.4f}" for k, v in cv_report["flagged_by_kind"].items())
    print(f"  [{trained_on}] flag>={flag_thr:.4f} block>={block_thr:.4f}; out-of-fold flagged: {summary}", file=log)
    sk: dict[str, Any] = {str(s["kind"]): s.pop("_sk") for s in subs}
    data = LinearModelFile.model_validate({
        "schema": SCHEMA,
        "trained_with": {"sklearn": sklearn.__version__, "numpy": np.__version__,
                         "python": platform.python_version(), "seed": str(SEED)},
        "trained_on": trained_on, "models": subs, "calibration": (a, b),
        "plain_short_shift": shift, "short_words": SHORT_WORDS,
        "thresholds": {"flag": flag_thr, "block": block_thr}, "metrics": {"cv": cv_report},
    })
    return data, sk


def rate(mask: np.ndarray) -> dict[str, Any]:
    """``n`` samples, ``hits`` of them, ``share``."""
    return {"n": int(mask.size), "hits": int(mask.sum()), "share": round(float(mask.mean()) if mask.size else 0.0, 4)}


def decision_rates(decisions: np.ndarray, kinds: np.ndarray) -> dict[str, dict[str, Any]]:
    """Per kind: flagged-or-blocked (``caught`` for injections) and blocked."""
    out: dict[str, dict[str, Any]] = {}
    for k in KINDS:
        m = kinds == k
        if m.any():
            d = decisions[m]
            out[k] = {"n": int(m.sum()), "flagged_or_blocked": int((d != "allow").sum()),
                      "blocked": int((d == "block").sum()),
                      "share": round(float((d != "allow").mean()), 4),
                      "blocked_share": round(float((d == "block").mean()), 4)}
    return out


def run_guard(data: Any, texts: list[str]) -> np.ndarray:
    """The run-time guard's decisions (heuristics + classifier) with one model."""
    from app.ai.guard.guard import Guard
    from app.ai.guard.model import LinearModel

    guard = Guard(LinearModel(data))
    return np.array([guard.evaluate(t).decision for t in texts], dtype=object)


def group_cv(prep: Prepared, idx: np.ndarray, extra: dict[str, list[list[str]]], log: Any = sys.stderr,
             ) -> dict[str, Any]:
    """Nested group-aware CV on ``idx``: the whole procedure per fold, run-time decisions on the rest."""
    t0 = time.time()
    dec = np.empty(len(idx), dtype=object)
    for k, (fit_pos, val_pos) in enumerate(group_folds(prep.y[idx], prep.groups[idx])):
        data, _ = fit_guard(prep, idx[fit_pos], f"group-cv fold {k + 1}", extra, log=io.StringIO())
        dec[val_pos] = run_guard(data, [prep.samples[i].text for i in idx[val_pos]])
        print(f"  group CV fold {k + 1}/{FOLDS} done ({time.time() - t0:.0f}s)", file=log)
    kinds = prep.kinds[idx]
    fam: dict[str, list[int]] = {}
    for pos, i in enumerate(idx):
        if prep.kinds[i] == "injection":
            fam.setdefault(prep.samples[i].category.split("/")[0], []).append(pos)
    return {"split": "dev-train-80pct", "folds": f"{FOLDS}-fold stratified group, whole procedure per fold",
            "n_groups": len(set(prep.groups[idx])),
            "by_kind": decision_rates(dec, kinds),
            "caught_by_family": {f: f"{int((dec[p] != 'allow').sum())}/{len(p)}" for f, p in sorted(fam.items())}}


def _parity(data: Any, sk: dict[str, Any], prep: Prepared, idx: np.ndarray) -> float:
    """Max |scikit-learn - pure Python| raw score per sub-model on some texts (must be ~0)."""
    from app.ai.guard.model import LinearModel, prepare

    diff = 0.0
    for sub in data.models:
        vec, clf = sk[sub.kind]
        ref = clf.decision_function(vec.transform([prep.docs[sub.kind][i] for i in idx]))
        py = np.array([LinearModel.sub_decision(sub, prepare(prep.samples[i].text)) for i in idx])
        diff = max(diff, float(np.max(np.abs(ref - py))))
    if diff > 1e-4:
        raise SystemExit(f"exported model disagrees with scikit-learn (max diff {diff})")
    return diff


def _write(data: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = json.dumps(data.model_dump(by_alias=True), separators=(",", ":"), sort_keys=True)
    with gzip.GzipFile(path, "wb", mtime=0) as fh:
        fh.write(payload.encode("utf-8"))
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("corpora", nargs="?", type=Path, default=DEFAULT_CORPORA)
    ap.add_argument("--out-dir", type=Path, default=Path(__file__).with_name("model"))
    ap.add_argument("--no-group-cv", action="store_true", help="skip the nested group CV (about 8 minutes)")
    args = ap.parse_args(argv)

    t0 = time.time()
    samples = load_samples(args.corpora)
    prep = prepare_samples(samples)
    extra = featurize(load_supplements())
    held = np.array([is_heldout(s.text) for s in samples])
    tr, hi = np.where(~held)[0], np.where(held)[0]
    counts = {k: int((prep.kinds == k).sum()) for k in KINDS}
    print(f"corpora: {len(samples)} texts {counts}, train {len(tr)}, held-out {len(hi)}, "
          f"{len(set(prep.groups))} groups; features in {time.time() - t0:.1f}s", file=sys.stderr)

    # 1. Nested group CV on the training split: the estimate for unseen prompts of the same kinds.
    gcv = None if args.no_group_cv else group_cv(prep, tr, extra)
    if gcv:
        print(f"  group CV (training split): {json.dumps(gcv['by_kind'])}", file=sys.stderr)

    # 2. Evaluation model: 80 % only, scored on the 20 % held-out split with the pure-Python guard.
    ev, sk = fit_guard(prep, tr, "dev-train-80pct", extra)
    diff = _parity(ev, sk, prep, hi[:40])
    dec = run_guard(ev, [samples[i].text for i in hi])
    ev.metrics["heldout"] = {
        "model": "this file (fitted on the 80 % split only)",
        "by_kind": decision_rates(dec, prep.kinds[hi]), "sklearn_parity_max_abs_diff": diff,
        "predictions": {text_id(samples[i].text): [str(prep.kinds[i]), str(d)] for i, d in zip(hi, dec)},
    }
    if gcv:
        ev.metrics["group_cv"] = gcv
    print(f"  held-out (80 %-trained model): {json.dumps(ev.metrics['heldout']['by_kind'])}", file=sys.stderr)
    _write(ev, args.out_dir / "guard-linear-eval80.json.gz")

    # 3. Shipped model: same procedure on all dev data.
    ship, sk = fit_guard(prep, np.arange(len(samples)), "dev-all-100pct", extra)
    ship.metrics["sklearn_parity_max_abs_diff"] = _parity(ship, sk, prep, hi[:40])
    held_summary = {k: v for k, v in ev.metrics["heldout"].items() if k != "predictions"}
    held_summary["model"] = "guard-linear-eval80.json.gz (same procedure, fitted on the 80 % split only)"
    ship.metrics["heldout_of_eval80_model"] = held_summary
    if gcv:
        ship.metrics["group_cv"] = gcv
    _write(ship, args.out_dir / "guard-linear.json.gz")
    print(f"done in {time.time() - t0:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
