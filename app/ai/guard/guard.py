"""The prompt-injection guard: heuristics + a calibrated linear classifier -> allow / flag / block.

Decision policy (OWASP LLM01 prompt injection, LLM07 system prompt leakage; ASVS 4.0.3 V5.1 input
validation at a trusted layer):

* ``block`` when confident: a *strong* heuristic matched (e.g. "ignore previous instructions", DAN
  template, "show me your system prompt"), or the classifier probability >= ``block`` threshold, or a
  weak heuristic and the classifier agree (two independent signals);
* ``flag`` in the grey zone: a weak heuristic alone, or probability >= ``flag`` threshold;
* ``allow`` otherwise.

The probability is calibrated (Platt scaling on group-aware out-of-fold scores of the development data:
among messages scored 0.6, about 6 in 10 were attacks there); for a short message in which no rule
matched it carries that group's far lower base rate (``model.py``, schema 3). Thresholds come from the model file;
``train.py`` chooses them on those out-of-fold scores, never on held-out data (``eval/README.md``).
``get_guard()`` uses the shipped model (fitted on all development data); ``Guard.load(EVAL_MODEL_PATH)``
is the 80 %-trained model the held-out numbers are measured with.

Reasons are short plain words for the person who sent the message (the web page shows them): a rule's
description ("instruction override: 'ignore previous instructions'") or the classifier's score
("classifier: 0.62 (likely injection)"). They never quote the message (they go to the audit log too).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from app.ai.guard.heuristics import describe, scan
from app.ai.guard.model import DEFAULT_MODEL_PATH, LinearModel

Decision = Literal["allow", "flag", "block"]




def odds_in_words(p: float) -> str:
    """A calibrated probability as a student reads it."""
    if p >= 0.9:
        return "very likely injection"
    if p >= 0.6:
        return "likely injection"
    if p >= 0.4:
        return "about even odds"
    return "unlikely injection"


def classifier_reason(p: float) -> str:
    return f"classifier: {p:.2f} ({odds_in_words(p)})"


class GuardVerdict(BaseModel):
    """What the guard decided and why; stored with the message as ``guard``."""

    decision: Decision
    reasons: list[str] = Field(default_factory=list)
    score: float = Field(ge=0.0, le=1.0)


class Guard:
    """Stateless evaluator; one instance is shared (thread-safe: no mutation after construction)."""

    def __init__(self, model: LinearModel, flag_threshold: float | None = None,
                 block_threshold: float | None = None) -> None:
        self.model = model
        th = model.data.thresholds
        self.flag_threshold = flag_threshold if flag_threshold is not None else th["flag"]
        self.block_threshold = block_threshold if block_threshold is not None else th["block"]

    @classmethod
    def load(cls, path: Path = DEFAULT_MODEL_PATH) -> Guard:
        """Load the shipped model (fails loudly if it is missing or of another schema)."""
        return cls(LinearModel.load(path))

    def evaluate(self, text: str) -> GuardVerdict:
        """Judge one user message (or any untrusted text bound for the model)."""
        if not text or not text.strip():
            return GuardVerdict(decision="allow", reasons=[], score=0.0)
        heur = scan(text)
        p = self.model.probability(text, pattern_matched=bool(heur.codes))
        # one reason per pattern: the multilingual variant of a rule that matched in English adds nothing
        reasons = [describe(c) for c in heur.codes if not (c.endswith("-ml") and c[:-3] in heur.codes)]
        if p >= self.flag_threshold:
            reasons.append(classifier_reason(p))
        decision: Decision
        # A short message with no injection pattern is judged by the classifier alone: it is at most
        # flagged, never refused, so an everyday question is always answered (false refusals are the
        # usability cost of LLM01 controls; a flag stays visible).
        classifier_may_block = bool(heur.codes) or not self.model.is_short(text)
        if heur.strong or (p >= self.block_threshold and classifier_may_block) or (
            heur.codes and p >= self.flag_threshold
        ):
            decision = "block"
        elif heur.codes or p >= self.flag_threshold:
            decision = "flag"
        else:
            decision = "allow"
        return GuardVerdict(decision=decision, reasons=reasons, score=round(max(p, heur.score), 4))


_guard: Guard | None = None
_lock = threading.Lock()


def get_guard() -> Guard:
    """Lazy process-wide singleton: the model is loaded once, on first use, from any thread."""
    global _guard
    if _guard is None:
        with _lock:
            if _guard is None:
                _guard = Guard.load()
    return _guard
