"""Data shapes of the attack suites: what a case is, what one run of it observed, what it concluded.

Why Pydantic: the JSON written by `lab attack --json` is read by `lab report` and by people; one
validated shape (unknown fields forbidden) keeps the two from drifting apart, and a case that names
no reference or no expected layer cannot even be constructed.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from logsearch.search import REQUEST_ID_RE

Outcome = Literal["stopped", "succeeded", "error"]
Layer = Literal["edge", "identity", "app", "data", "ai"]

CASE_ID_RE = re.compile(r"^(?:A(?:0[1-9]|10)|API(?:[1-9]|10)|LLM(?:0[1-9]|10))-[A-Z0-9]+(?:-[A-Z0-9]+)*-\d{2}$")
"""`A03-SQLI-MSG-01`: the leading family names the main OWASP list the case belongs to."""

REF_RE = re.compile(
    r"^(?:OWASP-A(?:0[1-9]|10):2021|API(?:[1-9]|10):2023|LLM(?:0[1-9]|10):2025|ASVS-V\d{1,2}\.\d{1,2}\.\d{1,2}"
    r"|CWE-\d+|RFC\d+)$"
)
"""Public references, spelled one way so the report can link and count them."""


class Expectation(BaseModel):
    """What a hardened lab should do with this attack."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    outcome: Outcome = "stopped"
    layer: Layer


class AttackCase(BaseModel):
    """One attack: an id, the references it maps to, and which layer is expected to stop it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    title: str = Field(min_length=3)
    refs: list[str] = Field(min_length=1)
    suite: str
    expected: Expectation
    tests_limits: bool = False
    """True when a quota refusal (rate-limited, budget-exhausted) IS the defence under test; for every
    other case such a refusal means the attack was not judged (an error, not a stop)."""

    @field_validator("id")
    @classmethod
    def _id_shape(cls, v: str) -> str:
        if not CASE_ID_RE.match(v):
            raise ValueError(f"case id {v!r} must look like A03-SQLI-MSG-01 / API1-BOLA-READ-01 / LLM01-PI-01")
        return v

    @field_validator("refs")
    @classmethod
    def _refs_shape(cls, v: list[str]) -> list[str]:
        bad = [r for r in v if not REF_RE.match(r)]
        if bad:
            raise ValueError(f"unrecognised reference(s) {bad}: use OWASP-A03:2021, API1:2023, LLM01:2025, ASVS-V5.1.3")
        return v


class Result(BaseModel):
    """What one run of a case concluded, with the evidence it was read from (never a guessed layer)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    refs: list[str]
    outcome: Outcome
    layer: Layer | None
    evidence: dict[str, Any] = Field(default_factory=dict)
    suite: str = ""
    title: str = ""
    expected: Expectation | None = None
    request_id: str | None = None
    """The edge's X-Request-ID of the decisive request: `./lab logs --request-id` follows it through
    every service's events (the report links each stopped attack to them)."""

    @field_validator("layer")
    @classmethod
    def _layer_only_when_stopped(cls, v: Layer | None, info: Any) -> Layer | None:
        if v is not None and info.data.get("outcome") != "stopped":
            raise ValueError("only a stopped attack names the layer that stopped it")
        return v

    @field_validator("request_id")
    @classmethod
    def _request_id_shape(cls, v: str | None) -> str | None:
        # Only ids the edge keeps (logsearch.search.REQUEST_ID_RE): the report puts it in a shell command.
        if v is not None and not REQUEST_ID_RE.match(v):
            raise ValueError("a request id is 8-128 characters of letters, digits and . _ : -")
        return v

    @property
    def as_expected(self) -> bool:
        return self.expected is not None and self.outcome == self.expected.outcome and (
            self.outcome != "stopped" or self.layer == self.expected.layer
        )


class Report(BaseModel):
    """The file `lab attack --json FILE` writes: `{"results": [...]}` plus how the run was made."""

    model_config = ConfigDict(extra="forbid")

    results: list[Result]
    target: dict[str, Any] = Field(default_factory=dict)

    def failed(self) -> list[Result]:
        """Cases that make the command exit non-zero: an attack that worked, or a run that proved nothing."""
        return [r for r in self.results if r.outcome in ("succeeded", "error")]
