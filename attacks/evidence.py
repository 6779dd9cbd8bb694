"""Evidence: which layer refused an attack, read from the response and the lab's logs, never guessed.

Sources, in the order they are trusted:
1. The response's problem+json `type` (`urn:seclab:problem:<cause>`): each cause belongs to one layer
   (ARCHITECTURE.md). OAuth errors of the identity provider's token endpoint (`{"error": ...}`) are
   the identity layer's refusals.
2. The edge's JSON access log, by request id: an empty upstream status means the edge answered by
   itself (its own 413/429/404/400), so the layer is the edge even when the cause also exists in the app.
3. nginx's error log at level info, by ModSecurity transaction id (= the edge's `$edge_request_id`,
   the `request_id` of the waf-blocked body): the matched CRS/lab rule ids. The ModSecurity-nginx connector
   writes no audit-log entry for requests redirected to the error page (ModSecurity-nginx #55, #182),
   so the error log is the primary source; the JSON audit log is read as a second one.
4. The app's JSON log, by request id: proof the app saw the request, with its status.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from attacks.model import Layer

PROBLEM_PREFIX = "urn:seclab:problem:"

LAYER_BY_PROBLEM: dict[str, Layer] = {
    "waf-blocked": "edge",
    "unauthenticated": "identity",
    "forbidden": "identity",
    "validation": "app",
    "not-found": "app",
    "method-not-allowed": "app",
    "not-acceptable": "app",
    "rate-limited": "app",
    "payload-too-large": "app",
    "unsupported-media-type": "app",
    "idempotency-key-reused": "app",
    "conflict": "app",
    "prompt-injection": "ai",
    "pii-policy": "ai",
    "budget-exhausted": "ai",
    "tenant-isolation": "data",
}
"""Problem cause -> layer. `upstream-unavailable` and `internal` are absent on purpose: a 5xx is a
failure of the lab, not a refusal, and never counts as an attack stopped."""

EDGE_OWN_CAUSES = frozenset({"validation", "not-found", "method-not-allowed", "payload-too-large", "rate-limited"})
"""Causes the edge answers by itself too (edge/snippets/seclab-problems.conf.j2): through the edge,
who answered must come from the access log, not from the cause."""

_RULE_ID = re.compile(r'\[id "(\d+)"\]')
_UNIQUE_ID = re.compile(r'\[unique_id "([^"]+)"\]')
_MSG = re.compile(r'\[msg "((?:[^"\\]|\\.)*)"\]')
_SEVERITY = re.compile(r'\[severity "([^"]+)"\]')


class RuleHit(BaseModel):
    """One ModSecurity message of one transaction."""

    model_config = ConfigDict(frozen=True)

    id: str
    msg: str = ""
    severity: str = ""
    denied: bool = False


class LogPaths(BaseModel):
    """Where the lab's logs are (playbooks/roles/edge and waf defaults; the app's supervisord log)."""

    model_config = ConfigDict(extra="forbid")

    edge_error_log: Path | None = None
    edge_access_log: Path | None = None
    modsec_audit_log: Path | None = None
    app_log: Path | None = None

    @classmethod
    def from_logs_dir(cls, logs_dir: str | Path) -> LogPaths:
        d = Path(logs_dir)
        return cls(
            edge_error_log=d / "nginx-error.log",
            edge_access_log=d / "nginx-access.json",
            modsec_audit_log=d / "waf" / "modsec_audit.json",  # waf role default waf_audit_log_path
            app_log=d / "app.log",
        )


# --- parsers (pure functions: the unit tests feed them sample lines) ---------------------------------


def problem_kind(content_type: str | None, body: Any) -> str | None:
    """The cause of an RFC 9457 body of this lab (`validation`), or None if it is not one."""
    if not isinstance(body, dict):
        return None
    t = body.get("type")
    if not isinstance(t, str) or not t.startswith(PROBLEM_PREFIX):
        return None
    ctype = (content_type or "").split(";", 1)[0].strip().lower()
    if ctype not in ("application/problem+json", "application/json"):
        return None
    return t[len(PROBLEM_PREFIX):]


def oauth_error(body: Any) -> str | None:
    """`invalid_grant` from a token endpoint's `{"error": ..., "error_description": ...}`."""
    if isinstance(body, dict) and isinstance(body.get("error"), str) and "type" not in body:
        return str(body["error"])
    return None


def parse_modsec_error_log(lines: Iterable[str]) -> dict[str, list[RuleHit]]:
    """Rule hits per ModSecurity transaction id from nginx error-log lines (`[unique_id "..."]`)."""
    out: dict[str, list[RuleHit]] = {}
    for line in lines:
        if "ModSecurity:" not in line:
            continue
        rid, uid = _RULE_ID.search(line), _UNIQUE_ID.search(line)
        if not (rid and uid):
            continue
        msg, sev = _MSG.search(line), _SEVERITY.search(line)
        out.setdefault(uid.group(1), []).append(
            RuleHit(
                id=rid.group(1),
                msg=msg.group(1) if msg else "",
                severity=sev.group(1) if sev else "",
                denied="Access denied" in line,
            )
        )
    return out


def json_lines(lines: Iterable[str]) -> Iterator[Any]:
    """The JSON documents of a JSON-lines log; partial, rotated or non-JSON lines are skipped."""
    for line in lines:
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            yield json.loads(line)
        except ValueError:
            continue


def parse_modsec_audit_log(lines: Iterable[str]) -> dict[str, list[RuleHit]]:
    """Rule hits per transaction id from libmodsecurity3 JSON audit records (one document per line)."""
    out: dict[str, list[RuleHit]] = {}
    for doc in json_lines(lines):
        tx = doc.get("transaction") if isinstance(doc, dict) else None
        if not isinstance(tx, dict) or not isinstance(tx.get("unique_id"), str):
            continue
        hits = out.setdefault(tx["unique_id"], [])
        for m in tx.get("messages") or []:
            details = m.get("details") if isinstance(m, dict) else None
            if not isinstance(details, dict) or not details.get("ruleId"):
                continue
            hits.append(
                RuleHit(
                    id=str(details["ruleId"]),
                    msg=str(m.get("message", ""))[:200],
                    severity=str(details.get("severity", "")),
                    denied=str(m.get("message", "")).startswith("Access denied"),
                )
            )
    return out


def parse_access_log(lines: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Edge access-log entries (ECS JSON of edge/nginx.conf.j2) by both ids they carry."""
    out: dict[str, dict[str, Any]] = {}
    for doc in json_lines(lines):
        http = doc.get("http", {}) if isinstance(doc, dict) else {}
        entry = {
            "status": str(http.get("response", {}).get("status_code", "")),
            "upstream_status": str(doc.get("upstream", {}).get("status", "")),
            "upstream_address": str(doc.get("upstream", {}).get("address", "")),
            "limit_req": str(doc.get("nginx", {}).get("limit_req", "")),
            "nginx_request_id": str(doc.get("nginx", {}).get("request_id", "")),
            "path": str(doc.get("url", {}).get("path", "")),
            "user_agent": str(doc.get("user_agent", {}).get("original", "")),
        }
        for key in (http.get("request", {}).get("id"), entry["nginx_request_id"]):
            if isinstance(key, str) and key:
                out[key] = entry
    return out


def parse_app_log(lines: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The app's ECS access records (`seclab.access`) by request id; other lines are skipped."""
    out: dict[str, dict[str, Any]] = {}
    for doc in json_lines(lines):
        if not isinstance(doc, dict) or doc.get("message") != "request":
            continue
        http = doc.get("http", {})
        rid = http.get("request", {}).get("id")
        if isinstance(rid, str):
            out[rid] = {
                "status": http.get("response", {}).get("status_code"),
                "route": doc.get("url", {}).get("path_template"),
            }
    return out


def answered_by_edge(entry: dict[str, Any]) -> bool:
    """nginx logs `$upstream_status` empty ("" or "-") when no upstream was contacted."""
    return entry.get("upstream_status", "") in ("", "-")


# --- reading the live logs ---------------------------------------------------------------------------


class LogTail:
    """One log file read from the offset it had when the run started (rotations restart at 0)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.offset = self._size()
        self.error: str | None = None

    def _size(self) -> int:
        try:
            return self.path.stat().st_size if self.path else 0
        except OSError:
            return 0

    def lines(self) -> list[str]:
        if self.path is None:
            self.error = "not configured"
            return []
        try:
            with self.path.open("rb") as fh:
                size = fh.seek(0, 2)
                fh.seek(self.offset if size >= self.offset else 0)
                data = fh.read()
        except OSError as exc:
            self.error = f"{type(exc).__name__}: {exc.strerror or exc}"
            return []
        self.error = None
        return data.decode("utf-8", "replace").splitlines()


class Evidence:
    """Lookups by request id in the logs of this run; each waits briefly for the line to be written."""

    def __init__(self, paths: LogPaths, wait_s: float = 1.5, poll_s: float = 0.15) -> None:
        self.paths = paths
        self.wait_s = wait_s
        self.poll_s = poll_s
        self.error_log = LogTail(paths.edge_error_log)
        self.audit_log = LogTail(paths.modsec_audit_log)
        self.access_log = LogTail(paths.edge_access_log)
        self.app_log = LogTail(paths.app_log)

    def _poll(self, fn: Any) -> Any:
        deadline = time.monotonic() + self.wait_s
        while True:
            found = fn()
            if found or time.monotonic() >= deadline:
                return found
            time.sleep(self.poll_s)

    def waf_rules(self, transaction_id: str | None, wait: bool = True) -> list[RuleHit]:
        """Rule hits of one ModSecurity transaction (error log, then the JSON audit log)."""
        if not transaction_id:
            return []

        def look() -> list[RuleHit]:
            hits = parse_modsec_error_log(self.error_log.lines()).get(transaction_id, [])
            return hits or parse_modsec_audit_log(self.audit_log.lines()).get(transaction_id, [])

        return self._poll(look) if wait else look()

    def edge_access(self, request_id: str | None) -> dict[str, Any] | None:
        if not request_id:
            return None
        return self._poll(lambda: parse_access_log(self.access_log.lines()).get(request_id))

    def app_access(self, request_id: str | None, wait: bool = True) -> dict[str, Any] | None:
        if not request_id:
            return None
        look = lambda: parse_app_log(self.app_log.lines()).get(request_id)
        return self._poll(look) if wait else look()

    def log_errors(self) -> dict[str, str]:
        """Logs that could not be read (the report says so instead of silently losing evidence)."""
        out = {}
        for name, tail in (("edge_error_log", self.error_log), ("edge_access_log", self.access_log),
                           ("modsec_audit_log", self.audit_log), ("app_log", self.app_log)):
            if tail.error:
                out[name] = f"{tail.path}: {tail.error}"
        return out


class ResponseFacts(BaseModel):
    """What the classifier needs from one HTTP answer (kept small: it goes into the JSON evidence)."""

    model_config = ConfigDict(extra="forbid")

    method: str
    path: str
    status: int
    content_type: str | None = None
    request_id: str | None = None
    body_request_id: str | None = None
    problem: str | None = None
    oauth_error: str | None = None
    detail: str | None = None
    elapsed_s: float = 0.0
    headers: dict[str, str] = Field(default_factory=dict)


KEPT_HEADERS = ("retry-after", "www-authenticate", "x-content-type-options", "content-security-policy", "set-cookie",
                "location")


def facts_from(method: str, path: str, status: int, headers: dict[str, str], body: Any, elapsed_s: float) -> ResponseFacts:
    """Pure: build ResponseFacts from the parts of a response (tests build them without a server)."""
    low = {k.lower(): v for k, v in headers.items()}
    ctype = low.get("content-type")
    kind = problem_kind(ctype, body)
    detail = body.get("detail") if isinstance(body, dict) and isinstance(body.get("detail"), str) else None
    if detail is None and isinstance(body, dict) and isinstance(body.get("error_description"), str):
        detail = body["error_description"]
    return ResponseFacts(
        method=method,
        path=path,
        status=status,
        content_type=ctype,
        request_id=low.get("x-request-id"),
        body_request_id=body.get("request_id") if isinstance(body, dict) and isinstance(body.get("request_id"), str) else None,
        problem=kind,
        oauth_error=oauth_error(body) if kind is None else None,
        detail=detail[:200] if detail else None,
        elapsed_s=round(elapsed_s, 3),
        headers={k: low[k][:200] for k in KEPT_HEADERS if k in low},
    )
