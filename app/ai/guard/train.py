"""Train the guard's classifiers from the lab corpora and export them in a version-independent form.

Usage::

    python -m app.ai.guard.train [CORPORA_DIR] [--out-dir app/ai/guard/model]

CORPORA_DIR defaults to ``<repo>/corpora`` (``prompt-injection/injections.jsonl`` = attacks,
``chat-legit/prompts.jsonl`` + ``code-heavy.jsonl`` = legitimate prompts).

Two model files are written, by the same procedure (``fit_guard``) on different data:

* ``guard-linear-eval80.json.gz`` (the *evaluation* model): fitted on the 80 % training split only.
  The held-out split (20 % of the texts, chosen by SHA-256 of the text) is never used for fitting,
  model selection or thresholds; this model is then scored on it with the pure-Python guard and its
  metrics and per-text decisions are stored in this file's ``metrics.heldout``. The tests and
  ``benchmarks/guard/measure.py`` re-score the held-out split with this file, so the reported held-out
  numbers can be reproduced (and a regression fails the test).
* ``guard-linear.json.gz`` (the *shipped* model, loaded by ``get_guard()``): fitted on 100 % of the
  development corpora, because more data generalizes better to prompts never seen. Its own numbers
  are its 5-fold cross-validation on all the data (``metrics.cv``); it has seen the held-out split,
  so held-out numbers are *not* measured with it: its metadata copies the evaluation model's held-out
  metrics under ``metrics.heldout_of_eval80_model``, labelled as such. ``--ship-on train`` fits the
  shipped model on the 80 % split instead (then both files hold the same weights).

``fit_guard`` (deterministic, seed 1337), given texts and labels:
* features: word 1-2-grams and character 3-5-grams (across word boundaries) of the normalized text,
  one TF-IDF + logistic-regression sub-model per kind (regularization C per kind, chosen by
  cross-validation on the 80 % split: see ``benchmarks/guard/README.md``);
* 5-fold stratified cross-validation gives out-of-fold scores per sub-model; their mean and standard
  deviation standardize each sub-model, the mean of the standardized scores is Platt-calibrated, and
  the thresholds are chosen on these out-of-fold probabilities combined with the heuristics exactly
  as the guard combines them (flag: <= 2 % minus 1.5 standard errors of legitimate prompts flagged,
  about 1.4 %; block: classifier alone <= 0.2 % of legitimate prompts, and >= 0.85);
* the hand-written hard negatives (``data/hard_negatives.jsonl``: legitimate questions *about* prompt
  injection, jailbreaks and system prompts, which the corpora lack) are added to every fit as
  legitimate, never to validation, thresholds or reported metrics;
* the sub-models are then refitted on all the texts given.
scikit-learn is needed here only (dev dependency); scoring uses ``app.ai.guard.model``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[3]
DEFAULT_CORPORA = REPO / "corpora"
# Hard negatives: legitimate questions about prompt injection, jailbreaks and system prompts (a security
# student's, a developer's). The corpora hold none, so the classifier would learn "mentions system
# prompt = attack". Added to every fit as legitimate, never to validation or the reported metrics.
HARD_NEGATIVES = Path(__file__).with_name("data") / "hard_negatives.jsonl"
SEED = 1337
HELDOUT_BUCKETS = 5  # 1 in 5 -> 20 % held out
FP_BUDGET = 0.02  # the target: <= 2 % of legitimate prompts flagged
# Flag threshold: out-of-fold legit flagged <= budget - 1.5 standard errors of a rate at the budget
# measured on n legit prompts (n = 1098 -> 1.37 %, n = 1362 -> 1.43 %): the margin covers the sampling
# noise of the threshold estimate, so unseen prompts of the same kind stay under the budget.
FP_MARGIN_SE = 1.5
TARGET_FP_BLOCK = 0.002  # block threshold: classifier alone, <= 0.2 % of validation legit blocked
MIN_BLOCK = 0.85
# Sub-models: feature kind -> (regularization C, max vocabulary); chosen by 5-fold CV on the 80 % split.
SUBMODELS: dict[str, tuple[float, int]] = {"char": (40.0, 60000), "word": (16.0, 40000)}


def load_corpora(root: Path) -> tuple[list[str], list[int], list[str]]:
    """Texts, labels (1 = attack) and a group/category per text; duplicates removed."""
    texts: list[str] = []
    labels: list[int] = []
    cats: list[str] = []
    seen: set[str] = set()
    files = [(root / "prompt-injection" / "injections.jsonl", 1),
             (root / "chat-legit" / "prompts.jsonl", 0),
             (root / "chat-legit" / "code-heavy.jsonl", 0)]
    for path, label in files:
        if not path.is_file():
            raise SystemExit(f"corpus file missing: {path}")
        for line in path.read_text(encoding="utf-8").split("\n"):  # not splitlines: U+2028 in texts
            if not line.strip():
                continue
            row = json.loads(line)
            text = row["text"]
            if text in seen:
                continue
            seen.add(text)
            texts.append(text)
            labels.append(label)
            cats.append(row.get("category", "legit"))
    return texts, labels, cats


def load_hard_negatives(path: Path = HARD_NEGATIVES) -> list[str]:
    """Hand-written legitimate prompts that talk *about* injections, jailbreaks and system prompts."""
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def is_heldout(text: str) -> bool:
    """Stable 80/20 split by content hash (same on every machine and run)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "big") % HELDOUT_BUCKETS == 0


def text_id(text: str) -> str:
    """Short stable id of a text (for the stored per-text held-out decisions)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


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


def _rates(flagged: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    return round(float(flagged[y == 1].mean()), 4), round(float(flagged[y == 0].mean()), 4)


def fit_guard(docs: dict[str, list[list[str]]], y: np.ndarray, heur: np.ndarray, trained_on: str,
              log: Any = sys.stderr, extra_legit: dict[str, list[list[str]]] | None = None,
              ) -> tuple[Any, dict[str, Any]]:
    """Cross-validate, calibrate, choose thresholds and fit the sub-models on all of ``docs``/``y``.

    ``docs`` maps a feature kind to the tokenized texts; ``heur`` says whether a heuristic matched.
    ``extra_legit`` (tokenized hard negatives) is added to every fit as legitimate, never validated on.
    Returns a ``LinearModelFile`` whose ``metrics.cv`` holds the out-of-fold numbers, and the fitted
    scikit-learn objects per kind (for the parity check).
    """
    import sklearn
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    from app.ai.guard.model import SCHEMA, LinearModelFile

    skf = StratifiedKFold(n_splits=5, shuffle=True, random_state=SEED)
    folds = list(skf.split(np.zeros(len(y)), y))
    zs, subs, cv_report = [], [], {}
    for kind, (c, max_features) in SUBMODELS.items():
        kd = docs[kind]
        extra = (extra_legit or {}).get(kind, [])
        y_extra = np.zeros(len(extra), dtype=y.dtype)
        oof = np.zeros(len(y))
        for fit_idx, val_idx in folds:
            vec, clf = _fit([kd[i] for i in fit_idx] + extra, np.concatenate([y[fit_idx], y_extra]), c, max_features)
            oof[val_idx] = clf.decision_function(vec.transform([kd[i] for i in val_idx]))
        mean, std = float(oof.mean()), float(oof.std()) or 1.0
        zs.append((oof - mean) / std)
        vec, clf = _fit(kd + extra, np.concatenate([y, y_extra]), c, max_features)
        coef = clf.coef_[0]
        subs.append({"kind": kind, "intercept": round(float(clf.intercept_[0]), 6),
                     "scale": (round(mean, 6), round(std, 6)),
                     "weights": {f: (round(float(vec.idf_[j]), 6), round(float(coef[j]), 6))
                                 for f, j in vec.vocabulary_.items()},
                     "_sk": (vec, clf)})
        cv_report[f"{kind}_C"] = c
        print(f"  [{trained_on}] {kind}: C={c:g}, {len(vec.vocabulary_)} features", file=log)
    oof_z = np.mean(zs, axis=0)

    # Platt calibration on out-of-fold scores (never on the data the score was fitted on).
    platt = LogisticRegression(C=1e6, max_iter=1000).fit(oof_z.reshape(-1, 1), y)
    a, b = float(platt.coef_[0][0]), float(platt.intercept_[0])
    p_oof = 1 / (1 + np.exp(-(a * oof_z + b)))

    # Thresholds on validation (OOF) scores, combined with heuristic hits as the guard combines them.
    n_legit = int((y == 0).sum())
    target_fp = FP_BUDGET - FP_MARGIN_SE * float(np.sqrt(FP_BUDGET * (1 - FP_BUDGET) / n_legit))
    cands = sorted(np.unique(np.round(p_oof, 4)))
    flag_thr = 0.99
    for t in cands:
        if float(((p_oof >= t) | heur)[y == 0].mean()) <= target_fp:
            flag_thr = float(t)
            break
    block_thr = MIN_BLOCK
    for t in cands:
        if t >= MIN_BLOCK and float((p_oof >= t)[y == 0].mean()) <= TARGET_FP_BLOCK:
            block_thr = float(t)
            break
    flag_thr = min(flag_thr, block_thr)
    cv_flagged = (p_oof >= flag_thr) | heur
    catch, legit = _rates(cv_flagged, y)
    cv_report.update({"n_attacks": int(y.sum()), "n_legit": int((y == 0).sum()),
                      "n_hard_negatives": len((extra_legit or {}).get("word", [])),
                      "flag_threshold": flag_thr, "block_threshold": block_thr,
                      "target_legit_flagged": round(target_fp, 4),
                      "cv_catch": catch, "cv_legit_flagged": legit,
                      "cv_catch_classifier_only": _rates(p_oof >= flag_thr, y)[0],
                      "cv_catch_heuristics_only": _rates(heur, y)[0]})
    print(f"  [{trained_on}] flag>={flag_thr:.4f} block>={block_thr:.4f}; CV with heuristics: catch {catch:.3f}, "
          f"legit flagged {legit:.4f}", file=log)
    sk: dict[str, Any] = {str(s["kind"]): s.pop("_sk") for s in subs}
    data = LinearModelFile.model_validate({
        "schema": SCHEMA,
        "trained_with": {"sklearn": sklearn.__version__, "numpy": np.__version__,
                         "python": platform.python_version(), "seed": str(SEED)},
        "trained_on": trained_on, "models": subs, "calibration": (a, b),
        "thresholds": {"flag": flag_thr, "block": block_thr}, "metrics": {"cv": cv_report},
    })
    return data, sk


def _parity(data: Any, sk: dict[str, Any], docs: dict[str, list[list[str]]], texts: list[str],
            idx: np.ndarray) -> float:
    """Max |scikit-learn - pure Python| raw score per sub-model on some texts (must be ~0)."""
    from app.ai.guard.model import LinearModel, prepare

    diff = 0.0
    for sub in data.models:
        vec, clf = sk[sub.kind]
        ref = clf.decision_function(vec.transform([docs[sub.kind][i] for i in idx]))
        py = np.array([LinearModel.sub_decision(sub, prepare(texts[i])) for i in idx])
        diff = max(diff, float(np.max(np.abs(ref - py))))
    return diff


def _write(data: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = json.dumps(data.model_dump(by_alias=True), separators=(",", ":"), sort_keys=True)
    with gzip.GzipFile(path, "wb", mtime=0) as fh:
        fh.write(payload.encode("utf-8"))
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("corpora", nargs="?", type=Path, default=DEFAULT_CORPORA)
    ap.add_argument("--out-dir", type=Path, default=Path(__file__).with_name("model"))
    ap.add_argument("--ship-on", choices=("all", "train"), default="all",
                    help="data the shipped model is fitted on: all dev corpora (default) or the 80 %% split")
    args = ap.parse_args(argv)

    from app.ai.guard.guard import Guard
    from app.ai.guard.heuristics import scan
    from app.ai.guard.model import LinearModel, char_features, prepare, word_features

    t0 = time.time()
    texts, labels, _ = load_corpora(args.corpora)
    held = np.array([is_heldout(t) for t in texts])
    y_all = np.array(labels)
    low = [prepare(t) for t in texts]
    docs_all = {"word": [word_features(s) for s in low], "char": [char_features(s) for s in low]}
    heur_all = np.array([bool(scan(t).codes) for t in texts])
    hard = [prepare(t) for t in load_hard_negatives()]
    extra = {"word": [word_features(s) for s in hard], "char": [char_features(s) for s in hard]}
    tr, hi = np.where(~held)[0], np.where(held)[0]
    print(f"corpora: {len(texts)} texts ({int(y_all.sum())} attacks), train {len(tr)}, held-out {len(hi)}"
          f"; features in {time.time() - t0:.1f}s", file=sys.stderr)

    # 1. Evaluation model: 80 % only, scored on the 20 % held-out split with the pure-Python guard.
    docs_tr = {k: [v[i] for i in tr] for k, v in docs_all.items()}
    ev, sk = fit_guard(docs_tr, y_all[tr], heur_all[tr], "dev-train-80pct", extra_legit=extra)
    diff = _parity(ev, sk, docs_all, texts, hi[:40])
    guard = Guard(LinearModel(ev))
    verdicts = [guard.evaluate(texts[i]) for i in hi]
    dec = np.array([v.decision for v in verdicts])
    yh = y_all[hi]
    flagged = dec != "allow"
    catch, legit = _rates(flagged, yh)
    ev.metrics["heldout"] = {
        "model": "this file (fitted on the 80 % split only)",
        "n_attacks": int(yh.sum()), "n_legit": int((yh == 0).sum()),
        "caught": int(flagged[yh == 1].sum()), "legit_flagged": int(flagged[yh == 0].sum()),
        "catch_rate": catch, "legit_flagged_rate": legit,
        "legit_blocked_rate": round(float((dec == "block")[yh == 0].mean()), 4),
        "sklearn_parity_max_abs_diff": diff,
        "predictions": {text_id(texts[i]): [int(y_all[i]), v.decision] for i, v in zip(hi, verdicts)},
    }
    print(f"  held-out (80 %-trained model): catch {catch:.4f} ({int(flagged[yh == 1].sum())}/{int(yh.sum())}), "
          f"legit flagged {legit:.4f} ({int(flagged[yh == 0].sum())}/{int((yh == 0).sum())}); parity {diff:.2e}",
          file=sys.stderr)
    if diff > 1e-4:
        raise SystemExit(f"exported model disagrees with scikit-learn (max diff {diff})")
    _write(ev, args.out_dir / "guard-linear-eval80.json.gz")

    # 2. Shipped model: same procedure on all dev data (or on the 80 % split with --ship-on train).
    if args.ship_on == "all":
        ship, sk = fit_guard(docs_all, y_all, heur_all, "dev-all-100pct", extra_legit=extra)
        diff = _parity(ship, sk, docs_all, texts, hi[:40])
        if diff > 1e-4:
            raise SystemExit(f"exported model disagrees with scikit-learn (max diff {diff})")
        ship.metrics["sklearn_parity_max_abs_diff"] = diff
    else:
        ship = ev.model_copy(deep=True)
    held_summary = {k: v for k, v in ev.metrics["heldout"].items() if k != "predictions"}
    held_summary["model"] = "guard-linear-eval80.json.gz (same procedure, fitted on the 80 % split only)"
    ship.metrics["heldout_of_eval80_model"] = held_summary
    _write(ship, args.out_dir / "guard-linear.json.gz")
    print(f"done in {time.time() - t0:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
