"""The guard's linear text classifier, stored in a version-independent form.

Why this form: a pickled scikit-learn pipeline only loads with the exact scikit-learn version that
wrote it, and unpickling runs code from the file (a supply-chain risk, OWASP LLM05/ASVS 4.0.3 V10.3).
Training (``train.py``, scikit-learn) therefore exports plain numbers: per feature its IDF and its
logistic-regression weight, the intercept and a Platt calibration, as gzipped JSON. Scoring here is
a few dict look-ups in pure Python with the *same* tokenizer function (``features``) the training
used, so no scikit-learn is needed at run time and no version can mismatch; a format ``schema``
number is checked on load and a mismatch fails loudly.
"""

from __future__ import annotations

import gzip
import json
import math
from collections import Counter
from pathlib import Path

from pydantic import BaseModel, Field

from app.ai.guard.normalize import normalize

SCHEMA = 1
DEFAULT_MODEL_PATH = Path(__file__).with_name("model") / "guard-linear.json.gz"
# Long prompts are scored on their head and tail: jailbreak framing sits at the start or the end, and
# the cost per prompt stays bounded (ASVS 4.0.3 V11.1.4 resource limits).
MAX_CHARS = 6000
TAIL_CHARS = 2000


def features(text: str) -> list[str]:
    """Tokenizer shared by training and scoring: word 1-2-grams and char 3-5-grams inside words.

    Text is normalized first (NFKC, homoglyphs, leetspeak, invisible characters) and lower-cased.
    """
    if len(text) > MAX_CHARS:
        text = text[: MAX_CHARS - TAIL_CHARS] + " " + text[-TAIL_CHARS:]
    low = normalize(text).lower()
    words = [w for w in _split(low) if w]
    out = ["w:" + w for w in words]
    out.extend("b:" + a + " " + b for a, b in zip(words, words[1:]))
    for w in set(words):
        padded = f" {w} "
        n = len(padded)
        for k in (3, 4, 5):
            if n < k:
                break
            out.extend("c:" + padded[i: i + k] for i in range(n - k + 1))
    return out


def _split(low: str) -> list[str]:
    """Words: runs of letters/digits/apostrophes; punctuation runs kept as their own tokens."""
    tokens: list[str] = []
    cur: list[str] = []
    for ch in low:
        if ch.isalnum() or ch in "'_":
            cur.append(ch)
            continue
        if cur:
            tokens.append("".join(cur))
            cur = []
        if not ch.isspace():
            tokens.append(ch)
    if cur:
        tokens.append("".join(cur))
    return tokens


class LinearModelFile(BaseModel):
    """On-disk form of the classifier (validated on load: a boundary like any other input)."""

    schema_: int = Field(alias="schema")
    trained_with: dict[str, str]
    weights: dict[str, tuple[float, float]]  # feature -> (idf, coefficient)
    intercept: float
    calibration: tuple[float, float]  # Platt: p = 1 / (1 + exp(-(a * z + b)))
    thresholds: dict[str, float]
    metrics: dict[str, object] = {}


class LinearModel:
    """TF-IDF (sublinear tf, L2 norm) + logistic regression, scored without scikit-learn."""

    def __init__(self, data: LinearModelFile) -> None:
        if data.schema_ != SCHEMA:
            raise RuntimeError(
                f"guard model schema {data.schema_} != expected {SCHEMA}: retrain with "
                f"`python -m app.ai.guard.train` (model written by {data.trained_with})"
            )
        self.data = data
        self._w = data.weights
        self._a, self._b = data.calibration

    @classmethod
    def load(cls, path: Path = DEFAULT_MODEL_PATH) -> "LinearModel":
        """Load and validate a model file; raises with the path named if it is missing or invalid."""
        if not path.is_file():
            raise FileNotFoundError(f"guard model not found at {path}: run `python -m app.ai.guard.train`")
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            raw = json.load(fh)
        return cls(LinearModelFile.model_validate(raw))

    def decision(self, text: str) -> float:
        """Raw linear score z (before calibration)."""
        counts = Counter(f for f in features(text) if f in self._w)
        if not counts:
            return self.data.intercept
        vals = []
        for f, c in counts.items():
            idf, coef = self._w[f]
            vals.append(((1.0 + math.log(c)) * idf, coef))
        norm = math.sqrt(sum(v * v for v, _ in vals)) or 1.0
        return sum(v * coef for v, coef in vals) / norm + self.data.intercept

    def probability(self, text: str) -> float:
        """Calibrated probability that ``text`` is an injection/jailbreak attempt."""
        z = self._a * self.decision(text) + self._b
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))
