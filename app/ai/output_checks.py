"""Checks on a model's answer before anyone sees it: canary, system-prompt leak, secrets, foreign PII, length.

Why: the model is not a trusted component. Whatever the prompt-injection guard missed shows up
here, in what the model *says*:
- the per-deployment canary token (a random value only the system prompt contains) in an answer
  proves the system prompt leaked: withhold (OWASP LLM07:2025 system prompt leakage; LLM01:2025);
- a long verbatim chunk of the system prompt: withhold (LLM07:2025);
- secret-looking strings (API keys, private key blocks, JWTs, `password=...`): redact (LLM02:2025;
  ASVS 4.0.3 V8.3.4 sensitive data not in responses);
- PII the user did not send (the model inventing or regurgitating someone's e-mail, IBAN...):
  redact (LLM02:2025; GDPR art. 5(1)(c) data minimisation);
- length: a character cap on top of the provider's `max_tokens` (LLM10:2025 unbounded consumption).

Answers are PLAIN TEXT. Nothing is stripped or escaped here on purpose: escaping is the renderer's
job and depends on its context; the API marks answers `text/plain` (`OutputVerdict.content_type`)
and no seclab client ever renders them as HTML or Markdown-to-HTML (OWASP LLM05:2025 improper output
handling; ASVS 4.0.3 V5.3.1 context-aware output encoding at the point of use).
Every non-allow decision is logged with its reasons, never with the answer text.
"""

from __future__ import annotations

import logging
import re
from typing import Literal

from prometheus_client import Counter
from pydantic import BaseModel, Field

from app.ai.pii import find_pii
from app.ai.pii.pseudonymize import canonical

log = logging.getLogger("seclab.ai.output")

OUTPUT_DECISIONS = Counter(
    "seclab_ai_output_decisions_total", "Output-check decisions by reason", ["decision", "reason"]
)

WITHHELD_TEXT = "The answer was withheld by the output policy of this service."

SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("private-key", re.compile(
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.DOTALL)),
    ("openai-key", re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}")),
    ("aws-key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("github-token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b")),
    ("slack-token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}")),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    ("credential-assignment", re.compile(
        r"(?i)\b(password|passwd|pwd|secret|api[_-]?key|access[_-]?token|client[_-]?secret)\b(\s*[:=]\s*)"
        r"(\"[^\"\n]{3,}\"|'[^'\n]{3,}'|[^\s\"',;]{3,})")),
)


class OutputVerdict(BaseModel):
    """What may be shown, and why; `text` is always safe to store and return as text/plain."""

    decision: Literal["allow", "redact", "withhold"]
    reasons: list[str] = Field(default_factory=list)
    text: str
    truncated: bool = False
    content_type: Literal["text/plain"] = "text/plain"


def _norm(s: str) -> str:
    return " ".join(s.lower().split())


class OutputChecker:
    """Per-deployment checker: knows the canary and the system prompt it guards."""

    def __init__(self, *, canary: str, system_prompt: str, max_chars: int = 4000, leak_min_chars: int = 40) -> None:
        if len(canary) < 16:
            raise ValueError("the canary must be a long random value (>= 16 characters)")
        self.canary = canary
        self.max_chars = max_chars
        self.leak_min_chars = leak_min_chars
        # Every normalized n-gram of the system prompt without its canary line: an answer containing
        # any of them repeats >= leak_min_chars of the prompt verbatim (modulo case and whitespace).
        sp = _norm(system_prompt.replace(canary, ""))
        n = leak_min_chars
        self._grams = {sp[i: i + n] for i in range(max(0, len(sp) - n + 1))} if len(sp) >= n else set()

    def _leaks_prompt(self, answer: str) -> bool:
        a, n = _norm(answer), self.leak_min_chars
        return any(a[i: i + n] in self._grams for i in range(max(0, len(a) - n + 1)))

    def check(self, answer: str, user_texts: list[str]) -> OutputVerdict:
        reasons: list[str] = []
        if self.canary.lower() in answer.lower():
            reasons.append("canary")
        if self._grams and self._leaks_prompt(answer):
            reasons.append("system-prompt-leak")
        if reasons:
            return self._decide(OutputVerdict(decision="withhold", reasons=reasons, text=WITHHELD_TEXT))

        text = answer
        for label, pat in SECRET_PATTERNS:
            if label == "credential-assignment":
                text, n = pat.subn(lambda m: f"{m.group(1)}{m.group(2)}[REDACTED:secret]", text)
            else:
                text, n = pat.subn(f"[REDACTED:{label}]", text)
            if n:
                reasons.append(f"secret:{label}")

        sent = {canonical(f.kind, f.value) for t in user_texts for f in find_pii(t)}
        parts: list[str] = []
        pos = 0
        for f in find_pii(text):
            if canonical(f.kind, f.value) in sent:
                continue  # the user's own data, restored from placeholders: theirs to see
            parts.append(text[pos: f.start])
            parts.append(f"[REDACTED:{f.kind}]")
            pos = f.end
            if f"pii:{f.kind}" not in reasons:
                reasons.append(f"pii:{f.kind}")
        parts.append(text[pos:])
        text = "".join(parts)

        truncated = len(text) > self.max_chars
        if truncated:
            text = text[: self.max_chars]
            reasons.append("length")
        decision: Literal["allow", "redact"] = "redact" if any(r != "length" for r in reasons) else "allow"
        return self._decide(OutputVerdict(decision=decision, reasons=reasons, text=text, truncated=truncated))

    @staticmethod
    def _decide(v: OutputVerdict) -> OutputVerdict:
        for r in v.reasons or ["none"]:
            OUTPUT_DECISIONS.labels(v.decision, r.split(":")[0]).inc()
        if v.decision != "allow" or v.truncated:
            log.warning("output check", extra={"decision": v.decision, "reasons": v.reasons})
        return v
