"""Train the guard's classifier from the lab corpora and export it in a version-independent form.

Usage::

    python -m app.ai.guard.train [CORPORA_DIR] [--out app/ai/guard/model/guard-linear.json.gz]

CORPORA_DIR defaults to ``<repo>/../shared/corpora`` (``prompt-injection/injections.jsonl`` = attacks,
``chat-legit/prompts.jsonl`` + ``code-heavy.jsonl`` = legitimate prompts).

Method (deterministic, seed 1337):
* held-out split: 20 % of the texts, chosen by SHA-256 of the text, never used for fitting, model
  selection or thresholds; its metrics are written into the model file and reported by
  ``benchmarks/guard/measure.py``.
* on the other 80 %: 5-fold stratified cross-validation picks the regularization C (best catch rate
  at <= 1 % legitimate prompts flagged), gives out-of-fold scores for a Platt calibration and for the
  thresholds (chosen on these validation scores, combined with the heuristics, never on held-out).
* the final model is fitted on the 80 % only, so the held-out numbers stay honest.
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
DEFAULT_CORPORA = REPO.parent / "shared" / "corpora"
SEED = 1337
HELDOUT_BUCKETS = 5  # 1 in 5 -> 20 % held out
TARGET_FP_FLAG = 0.015  # flag threshold: <= 1.5 % of validation legit flagged (budget 2 %, 0.5 % margin)
TARGET_FP_BLOCK = 0.002  # block threshold: classifier alone, <= 0.2 % of validation legit blocked
MIN_BLOCK = 0.85


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


def is_heldout(text: str) -> bool:
    """Stable 80/20 split by content hash (same on every machine and run)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "big") % HELDOUT_BUCKETS == 0


def _identity(doc: list[str]) -> list[str]:
    return doc


def _vectorizer(max_features: int) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(analyzer=_identity, min_df=2, sublinear_tf=True, max_features=max_features,
                           smooth_idf=True, norm="l2", dtype=np.float64)


def _fit(docs: list[list[str]], y: np.ndarray, c: float, max_features: int) -> tuple[Any, Any]:
    from sklearn.linear_model import LogisticRegression

    vec = _vectorizer(max_features)
    x = vec.fit_transform(docs)
    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=5000, random_state=SEED)
    clf.fit(x, y)
    return vec, clf


def _catch_at_fp(scores: np.ndarray, y: np.ndarray, fp: float) -> tuple[float, float]:
    legit = np.sort(scores[y == 0])
    k = int(np.floor(fp * len(legit)))
    thr = legit[-(k + 1)] + 1e-9 if k < len(legit) else legit[0]
    return float((scores[y == 1] > thr).mean()), float(thr)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("corpora", nargs="?", type=Path, default=DEFAULT_CORPORA)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("model") / "guard-linear.json.gz")
    ap.add_argument("--max-features", type=int, default=40000)
    ap.add_argument("--c", type=float, nargs="*", default=[8.0, 16.0])
    args = ap.parse_args(argv)

    import sklearn
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    from app.ai.guard.heuristics import scan
    from app.ai.guard.model import SCHEMA, LinearModel, LinearModelFile, features

    t0 = time.time()
    texts, labels, cats = load_corpora(args.corpora)
    held = np.array([is_heldout(t) for t in texts])
    y_all = np.array(labels)
    docs_all = [features(t) for t in texts]
    heur_all = np.array([bool(scan(t).codes) for t in texts])
    tr = np.where(~held)[0]
    docs = [docs_all[i] for i in tr]
    y = y_all[tr]
    print(f"corpora: {len(texts)} texts ({int(y_all.sum())} attacks), train {len(tr)}, held-out {int(held.sum())}"
          f"; features in {time.time() - t0:.1f}s", file=sys.stderr)

    skf = StratifiedKFold(n_splits=5, shuffle=True, random_state=SEED)
    best: tuple[float, float, np.ndarray] | None = None
    cv_report: dict[str, Any] = {}
    for c in args.c:
        oof = np.zeros(len(tr))
        for fit_idx, val_idx in skf.split(np.zeros(len(y)), y):
            vec, clf = _fit([docs[i] for i in fit_idx], y[fit_idx], c, args.max_features)
            oof[val_idx] = clf.decision_function(vec.transform([docs[i] for i in val_idx]))
        catch, _ = _catch_at_fp(oof, y, TARGET_FP_FLAG)
        cv_report[f"C={c:g}"] = {"catch_at_1pct_fp": round(catch, 4)}
        print(f"  C={c:g}: CV catch at 1% FP = {catch:.3f}", file=sys.stderr)
        if best is None or catch > best[0]:
            best = (catch, c, oof)
    assert best is not None
    _, c_best, oof = best

    # Platt calibration on out-of-fold scores (never on the data the score was fitted on).
    platt = LogisticRegression(C=1e6, max_iter=1000).fit(oof.reshape(-1, 1), y)
    a, b = float(platt.coef_[0][0]), float(platt.intercept_[0])
    p_oof = 1 / (1 + np.exp(-(a * oof + b)))

    # Thresholds on validation (OOF) scores, combined with heuristic hits as the guard combines them.
    heur_tr = heur_all[tr]
    cands = np.unique(np.round(p_oof, 4))
    flag_thr = 0.99
    for t in sorted(cands):
        fp = float(((p_oof >= t) | heur_tr)[y == 0].mean())
        if fp <= TARGET_FP_FLAG:
            flag_thr = float(t)
            break
    block_thr = MIN_BLOCK
    for t in sorted(cands):
        if t >= MIN_BLOCK and float((p_oof >= t)[y == 0].mean()) <= TARGET_FP_BLOCK:
            block_thr = float(t)
            break
    flag_thr = min(flag_thr, block_thr)
    cv_flagged = (p_oof >= flag_thr) | heur_tr
    cv_report["chosen"] = {
        "C": c_best, "flag_threshold": flag_thr, "block_threshold": block_thr,
        "cv_catch": round(float(cv_flagged[y == 1].mean()), 4),
        "cv_legit_flagged": round(float(cv_flagged[y == 0].mean()), 4),
    }
    print(f"  chosen C={c_best:g} flag>={flag_thr:.4f} block>={block_thr:.4f}; CV with heuristics: "
          f"catch {cv_report['chosen']['cv_catch']:.3f}, legit flagged {cv_report['chosen']['cv_legit_flagged']:.4f}",
          file=sys.stderr)

    vec, clf = _fit(docs, y, c_best, args.max_features)
    coef = clf.coef_[0]
    weights = {f: (round(float(vec.idf_[j]), 6), round(float(coef[j]), 6))
               for f, j in vec.vocabulary_.items()}
    data = LinearModelFile.model_validate({
        "schema": SCHEMA,
        "trained_with": {"sklearn": sklearn.__version__, "numpy": np.__version__,
                         "python": platform.python_version(), "seed": str(SEED)},
        "weights": weights, "intercept": round(float(clf.intercept_[0]), 6),
        "calibration": (a, b), "thresholds": {"flag": flag_thr, "block": block_thr},
        "metrics": {"cv": cv_report},
    })
    # Held-out evaluation with the exported (pure-Python) model and the full guard policy.
    from app.ai.guard.guard import Guard

    guard = Guard(LinearModel(data))
    hi = np.where(held)[0]
    dec = [guard.evaluate(texts[i]).decision for i in hi]
    flagged = np.array([d != "allow" for d in dec])
    yh = y_all[hi]
    # Parity check: pure-Python scoring must equal scikit-learn's on held-out texts.
    sk = clf.decision_function(vec.transform([docs_all[i] for i in hi[:50]]))
    py = np.array([guard.model.decision(texts[i]) for i in hi[:50]])
    max_diff = float(np.max(np.abs(sk - py)))
    data.metrics["heldout"] = {
        "n_attacks": int(yh.sum()), "n_legit": int((yh == 0).sum()),
        "catch_rate": round(float(flagged[yh == 1].mean()), 4),
        "legit_flagged_rate": round(float(flagged[yh == 0].mean()), 4),
        "legit_blocked_rate": round(float(np.array([d == "block" for d in dec])[yh == 0].mean()), 4),
        "sklearn_parity_max_abs_diff": max_diff,
    }
    print(f"  held-out: {json.dumps(data.metrics['heldout'])}", file=sys.stderr)
    if max_diff > 1e-4:
        raise SystemExit(f"exported model disagrees with scikit-learn (max diff {max_diff})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = json.dumps(data.model_dump(by_alias=True), separators=(",", ":"), sort_keys=True)
    with gzip.GzipFile(args.out, "wb", mtime=0) as fh:
        fh.write(payload.encode("utf-8"))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, {len(weights)} features) "
          f"in {time.time() - t0:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
