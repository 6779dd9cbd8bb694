"""Pydantic models at the API boundary.

Request models forbid unknown fields so a client cannot set server-owned fields such as `owner`,
`role` or `guard` (mass assignment, OWASP API3:2023; ASVS 4.0.3 V5.1.2).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from labdef import NAME_RE

CONTROL_CHARS = frozenset(chr(c) for c in (*range(0x20), 0x7F))
"""C0 controls and DEL: refused in one-line fields such as titles, which end up in lists and logs
(terminal/log injection, OWASP ASVS 4.0.3 V5.1.4, V7.3.1). Refused with a 422."""


def _one_clean_line(value: str) -> str:
    if any(ch in CONTROL_CHARS for ch in value):
        raise ValueError("control characters (including line breaks) are not allowed")
    return value


def _no_nul(value: str) -> str:
    """Message text is kept as sent (pasted terminal output carries escapes, real prompts do), but NUL
    cannot be stored in a PostgreSQL text column: without this check it would fail at INSERT (a 500)."""
    if "\x00" in value:
        raise ValueError("NUL characters are not allowed")
    return value


CANONICAL_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
"""RFC 9562 text form, the one the API emits. Python's UUID() also takes 32 bare hex digits, braces and
`urn:uuid:`: those are refused (422) so one resource has one URL and the schema's `format: uuid` is the
contract the server enforces (parser differentials, OWASP API8:2023; ASVS 4.0.3 V5.1.3)."""


def _canonical_uuid(value: object) -> object:
    if isinstance(value, str) and not CANONICAL_UUID.match(value):
        raise ValueError("must be a UUID in its canonical 8-4-4-4-12 form")
    return value


ResourceId = Annotated[UUID, BeforeValidator(_canonical_uuid)]
"""A path id: validated (422) before any dependency touches the database."""


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class ConversationCreate(_Request):
    title: str = Field(default="", max_length=200)

    @field_validator("title")
    @classmethod
    def _title_one_clean_line(cls, v: str) -> str:
        return _one_clean_line(v)


class MessageCreate(_Request):
    # max_length is lab.yml limits.message_max_chars; re-checked in the route with the live value.
    content: str = Field(min_length=1, max_length=16000)

    @field_validator("content")
    @classmethod
    def _content_clean(cls, v: str) -> str:
        return _no_nul(v)


class GuardOut(BaseModel):
    decision: Literal["allow", "flag", "block"]
    reasons: list[str]


class ConversationOut(BaseModel):
    id: UUID
    title: str
    created_at: datetime


MessageStatus = Literal["pending", "answered", "failed", "blocked"]


class MessageOut(BaseModel):
    id: UUID
    conversation_id: UUID
    role: Literal["user", "assistant"]
    content: str = Field(description="plain text; never render it as HTML or Markdown-to-HTML (OWASP LLM05:2025)")
    content_type: Literal["text/plain"] = "text/plain"
    guard: GuardOut | None = None
    status: MessageStatus | None = Field(default=None, description="user messages: where the answer stands")
    status_reason: str | None = Field(default=None, description="why a message failed (a category, no text)")
    provider: str | None = None
    output_decision: Literal["allow", "redact", "withhold"] | None = Field(
        default=None, description="assistant messages: the output checks' decision")
    reply_to: UUID | None = None
    created_at: datetime


class ConversationPage(BaseModel):
    items: list[ConversationOut]
    next_cursor: str | None


class MessagePage(BaseModel):
    items: list[MessageOut]
    next_cursor: str | None


class ExchangeOut(BaseModel):
    """201: `reply` is the answer; 202: accepted, `reply` is null until the worker answers."""

    message: MessageOut
    reply: MessageOut | None


class UserConversationCount(BaseModel):
    user: str
    conversations: int
    messages: int


class TenantUsage(BaseModel):
    tenant: str
    users: list[UserConversationCount]


class AuditEntryOut(BaseModel):
    id: int
    ts: datetime
    actor: str
    action: str
    target: str
    detail: str
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    next_cursor: str | None


class LabAuditEntryOut(BaseModel):
    scope: str = Field(description="the tenant whose audit log holds the entry")
    id: int
    ts: datetime
    actor: str
    action: str
    target: str
    detail: str


class LabAuditPage(BaseModel):
    items: list[LabAuditEntryOut]
    next_cursor: str | None


class EdgeRefusalOut(BaseModel):
    ts: str
    request_id: str = Field(description="the edge's X-Request-ID: grep it in /var/log/seclab to follow the request")
    status: int
    cause: str = Field(description="the problem type's cause (urn:seclab:problem:<cause>)")
    method: str
    path: str
    client: str


class EdgeRefusalList(BaseModel):
    items: list[EdgeRefusalOut]


class RequestEventOut(BaseModel):
    ts: str = Field(description="@timestamp of the event (UTC)")
    dataset: str = Field(description="which log it came from (event.dataset: nginx.access, seclab.access, ...)")
    level: str | None = None
    message: str = Field(description="the message, or method, path and status of an access-log event")


class RequestEventList(BaseModel):
    request_id: str
    items: list[RequestEventOut] = Field(description="every service's events of the request, oldest first")


class TenantCreate(_Request):
    name: str = Field(pattern=NAME_RE)


class TenantOut(BaseModel):
    name: str
    created_at: datetime


class TenantList(BaseModel):
    items: list[TenantOut]


class AdminActionOut(BaseModel):
    changed: bool
    actions: list[str]


class AuditVerifyOut(BaseModel):
    ok: bool
    tables: list[str]
    broken: dict[str, str | int] | None = None


class HealthOut(BaseModel):
    status: Literal["ok"]


class ReadyOut(BaseModel):
    status: Literal["ready"]
    checks: dict[str, bool]
