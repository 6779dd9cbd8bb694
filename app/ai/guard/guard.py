"""The prompt-injection guard: heuristics + a calibrated linear classifier -> allow / flag / block.

Decision policy (OWASP LLM01 prompt injection, LLM07 system prompt leakage; ASVS 4.0.3 V5.1 input
validation at a trusted layer):

* ``block`` when confident: a *strong* heuristic matched (e.g. "ignore previous instructions", DAN
  template, "show me your system prompt"), or the classifier probability >= ``block`` threshold, or a
  weak heuristic and the classifier agree (two independent signals);
* ``flag`` in the grey zone: a weak heuristic alone, or probability >= ``flag`` threshold;
* ``allow`` otherwise.

Thresholds come from the model file; ``train.py`` chooses them on out-of-fold cross-validation scores
of the data that model was fitted on (flag: <= about 1.4 % of validation legit prompts flagged together
with the heuristics, i.e. the 2 % budget minus 1.5 standard errors; block: <= 0.2 % blocked by the
classifier alone, and >= 0.85), never on held-out data. ``get_guard()`` uses the shipped model (fitted
on all development data); ``Guard.load(EVAL_MODEL_PATH)`` is the 80 %-trained model the held-out
numbers are measured with.
Reasons are stable codes: ``heuristic:<rule>`` and ``classifier:<probability>``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from app.ai.guard.heuristics import scan
from app.ai.guard.model import DEFAULT_MODEL_PATH, LinearModel

Decision = Literal["allow", "flag", "block"]


MIN_WORDS_CLASSIFIER_BLOCK = 12
"""Below this many words and without a heuristic hit, the classifier may flag but not block."""


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
        p = self.model.probability(text)
        reasons = [f"heuristic:{c}" for c in heur.codes]
        if p >= self.flag_threshold:
            reasons.append(f"classifier:{p:.2f}")
        decision: Decision
        # A short message with no injection pattern is judged by the classifier alone, and the training
        # data holds benign-looking short questions labelled as attacks (indirect-injection payloads):
        # such a message is at most flagged, never refused, so "What is the capital of France?" is
        # answered (false refusals are the usability cost of LLM01 controls; flags stay visible).
        classifier_may_block = bool(heur.codes) or len(text.split()) >= MIN_WORDS_CLASSIFIER_BLOCK
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
