"""Per-conversation pseudonymization: PII -> stable placeholders -> restored in the model's answer.

Why: an external provider never sees the personal data, yet the answer reads naturally for the user
(OWASP LLM02:2025 sensitive information disclosure; GDPR art. 4(5) pseudonymisation). The same
value gets the same placeholder for the whole conversation, so the model can still reason about
"<PERSON_1> wrote to <EMAIL_1>" across turns. The mapping is the only link back to the person and is
only ever stored encrypted (see ``store.py``).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from app.ai.pii.detect import Finding, Kind, find_pii

_PLACEHOLDER = re.compile(r"(?:<|&lt;|\[)(EMAIL|PHONE|IBAN|CARD|IP|NATIONAL_ID|PERSON)_(\d{1,5})(?:>|&gt;|\])")


def canonical(kind: str, value: str) -> str:
    """Equality key: the same e-mail in another case or the same number spaced differently is one value."""
    if kind in ("EMAIL", "PERSON"):
        return f"{kind}:{' '.join(value.lower().split())}"
    if kind == "IP":
        return f"{kind}:{value.lower()}"
    return f"{kind}:{re.sub(r'[^0-9A-Za-z+]', '', value).upper()}"


class PseudonymMapping(BaseModel):
    """Placeholder <-> original value for one conversation (sensitive: store encrypted only)."""

    originals: dict[str, str] = Field(default_factory=dict)  # "<EMAIL_1>" -> "ann@example.org"
    by_value: dict[str, str] = Field(default_factory=dict)  # canonical value -> "<EMAIL_1>"
    counters: dict[str, int] = Field(default_factory=dict)  # kind -> last number used


class Pseudonymizer:
    """Replace PII with placeholders and put it back; keeps the mapping of one conversation."""

    def __init__(self, mapping: PseudonymMapping | None = None, kinds: tuple[Kind, ...] | None = None) -> None:
        self.mapping = mapping or PseudonymMapping()
        self.kinds = kinds

    def _placeholder(self, f: Finding) -> str:
        key = canonical(f.kind, f.value)
        ph = self.mapping.by_value.get(key)
        if ph is None:
            n = self.mapping.counters.get(f.kind, 0) + 1
            self.mapping.counters[f.kind] = n
            ph = f"<{f.kind}_{n}>"
            self.mapping.by_value[key] = ph
            self.mapping.originals[ph] = f.value
        return ph

    def pseudonymize(self, text: str) -> str:
        """Text with every finding replaced by its conversation-stable placeholder."""
        findings = find_pii(text) if self.kinds is None else find_pii(text, self.kinds)
        parts: list[str] = []
        pos = 0
        for f in findings:
            parts.append(text[pos: f.start])
            parts.append(self._placeholder(f))
            pos = f.end
        parts.append(text[pos:])
        return "".join(parts)

    def restore(self, answer: str) -> str:
        """Put the originals back for placeholders this conversation knows (also ``&lt;X_1&gt;``, ``[X_1]``).

        Unknown placeholders are left as they are: the model cannot conjure values from elsewhere.
        """
        def sub(m: re.Match[str]) -> str:
            return self.mapping.originals.get(f"<{m.group(1)}_{m.group(2)}>", m.group(0))

        return _PLACEHOLDER.sub(sub, answer)
