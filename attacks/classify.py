"""Outcome classification: succeeded, stopped (by which layer), or error, from observed facts only.

Rules (ARCHITECTURE.md "an attack report names, for each attack, the layer that stopped it"):
- The attack had its effect (checked by the case: data of another tenant read, token accepted, PII
  in the answer, a canary fetched, ...)           -> succeeded, no layer.
- Refused with a problem type / OAuth error       -> stopped, the layer of that cause; through the
  edge, the access log decides whether the edge answered by itself; a waf-blocked refusal needs the
  matched rule ids from the edge's logs.
- Accepted (2xx) but without effect, and the case PROVED why (a `Neutralized` with a non-empty proof:
  payload stored verbatim as a bound parameter, the reply holds no PII, the canary got no connection)
  -> stopped by the layer the proof names. Without such proof -> error.
- Anything else (5xx, no answer, a refusal with no readable cause, a cause the logs contradict)
  -> error. A layer is never guessed.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from attacks.evidence import EDGE_OWN_CAUSES, LAYER_BY_PROBLEM, Evidence, ResponseFacts, answered_by_edge
from attacks.model import AttackCase, Layer, Result
from logsearch.search import REQUEST_ID_RE

QUOTA_CAUSES = frozenset({"rate-limited", "budget-exhausted"})
"""Refusals that say "too much", not "this is an attack": they stop a case only where limits are the
defence under test (AttackCase.tests_limits)."""


class Neutralized(BaseModel):
    """An accepted request that did nothing harmful, and the observable reason why."""

    model_config = ConfigDict(extra="forbid")

    layer: Layer
    proof: dict[str, Any] = Field(min_length=1)


class Observation(BaseModel):
    """What a case saw. `response` is the decisive answer (the refusal, or the answer that shows the effect)."""

    model_config = ConfigDict(extra="forbid")

    effective: bool = False
    response: ResponseFacts | None = None
    neutralized: Neutralized | None = None
    notes: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None


def _result(case: AttackCase, outcome: str, layer: Layer | None, evidence: dict[str, Any]) -> Result:
    return Result(
        id=case.id, refs=list(case.refs), outcome=outcome, layer=layer,  # type: ignore[arg-type]
        evidence=evidence, suite=case.suite, title=case.title, expected=case.expected,
    )


def classify(case: AttackCase, obs: Observation, evidence: Evidence | None, through_edge: bool) -> Result:
    """The outcome, with the decisive request's edge id (when the edge gave it one) for `lab logs`."""
    result = _classify(case, obs, evidence, through_edge)
    resp = obs.response
    rid = (resp.request_id or resp.body_request_id) if resp is not None else None
    if rid and REQUEST_ID_RE.match(rid):
        result.request_id = rid
    return result


def _classify(case: AttackCase, obs: Observation, evidence: Evidence | None, through_edge: bool) -> Result:
    ev: dict[str, Any] = dict(obs.notes)
    resp = obs.response
    if resp is not None:
        ev["response"] = resp.model_dump(exclude_defaults=True)
    if obs.error:
        ev["reason"] = obs.error
        return _result(case, "error", None, ev)

    # Through the edge, also record what the WAF matched (in detection-only mode: the rules that WOULD
    # have blocked), whoever answered in the end.
    access: dict[str, Any] | None = None
    if resp is not None and through_edge and evidence is not None:
        access = evidence.edge_access(resp.request_id or resp.body_request_id)
        if access is not None:
            ev["edge_access"] = {k: access[k] for k in ("status", "upstream_status", "limit_req") if access.get(k)}
            hits = evidence.waf_rules(access.get("nginx_request_id"), wait=False)
            if hits:
                ev["waf_rules"] = sorted({h.id for h in hits})

    if obs.effective:
        ev["reason"] = ev.get("reason", "the attack had its effect")
        return _result(case, "succeeded", None, ev)
    if resp is None:
        if obs.neutralized is not None:  # a tool run of many requests (sqlmap): its summary is the proof
            ev["neutralized"] = obs.neutralized.proof
            return _result(case, "stopped", obs.neutralized.layer, ev)
        ev["reason"] = "no response was observed"
        return _result(case, "error", None, ev)

    if 200 <= resp.status < 400:
        if obs.neutralized is None:
            ev["reason"] = f"accepted ({resp.status}) without visible effect, but no layer showed a decision"
            return _result(case, "error", None, ev)
        ev["neutralized"] = obs.neutralized.proof
        return _result(case, "stopped", obs.neutralized.layer, ev)

    if resp.status >= 500:
        ev["reason"] = f"server error {resp.status} ({resp.problem or 'no problem type'}): a failure, not a refusal"
        return _result(case, "error", None, ev)

    # 4xx: a refusal. Which layer?
    if resp.oauth_error is not None:
        return _result(case, "stopped", "identity", ev)
    if resp.problem is None:
        ev["reason"] = f"refusal {resp.status} without a problem type"
        return _result(case, "error", None, ev)

    if resp.problem == "waf-blocked":
        if evidence is None:
            ev["reason"] = "waf-blocked, but no edge log to read the rule ids from"
            return _result(case, "error", None, ev)
        hits = evidence.waf_rules(resp.body_request_id or resp.request_id)
        if not hits:
            ev["reason"] = "waf-blocked body, but no ModSecurity rule id for its request id in the edge logs"
            ev["log_errors"] = evidence.log_errors()
            return _result(case, "error", None, ev)
        ev["waf_rules"] = sorted({h.id for h in hits})
        ev["waf_denied_by"] = sorted({h.id for h in hits if h.denied})
        return _result(case, "stopped", "edge", ev)

    if resp.problem in QUOTA_CAUSES and not case.tests_limits:
        ev["reason"] = f"refused by a quota ({resp.problem}) before the attack could be judged: not tested"
        return _result(case, "error", None, ev)
    layer = LAYER_BY_PROBLEM.get(resp.problem)
    if layer is None:
        ev["reason"] = f"problem type {resp.problem!r} is not a refusal of any layer"
        return _result(case, "error", None, ev)
    if through_edge and resp.problem in EDGE_OWN_CAUSES:
        if access is None:
            ev["reason"] = f"{resp.problem}: request id not in the edge access log, cannot tell the edge from the app"
            if evidence is not None:
                ev["log_errors"] = evidence.log_errors()
            return _result(case, "error", None, ev)
        if answered_by_edge(access):
            return _result(case, "stopped", "edge", ev)
    if evidence is not None and not through_edge:
        seen = evidence.app_access(resp.request_id, wait=False)
        if seen is not None:
            ev["app_log"] = seen
    return _result(case, "stopped", layer, ev)
