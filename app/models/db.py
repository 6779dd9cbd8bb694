"""Tortoise models of the tenant schema tables (app/db/migrations/0001_chat.sql is the DDL).

No schema is named here: every query runs after `SET LOCAL search_path TO tenant_<t>`, so the
same model reads the current tenant's table and no other (see app/db/tenancy.py).
"""

from __future__ import annotations

import uuid

from tortoise import fields
from tortoise.models import Model


class Conversation(Model):
    seq = fields.BigIntField(primary_key=True, generated=True)
    id = fields.UUIDField(unique=True, default=uuid.uuid4)
    owner_sub = fields.CharField(max_length=255)
    title = fields.TextField(default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "conversations"


class Message(Model):
    seq = fields.BigIntField(primary_key=True, generated=True)
    id = fields.UUIDField(unique=True, default=uuid.uuid4)
    conversation_id = fields.UUIDField()
    role = fields.CharField(max_length=16)
    author_sub = fields.CharField(max_length=255)
    content = fields.TextField()
    guard_decision = fields.CharField(max_length=8, null=True)
    guard_reasons: list[str] = fields.JSONField(default=list)  # type: ignore[assignment]
    reply_to = fields.UUIDField(null=True)
    provider = fields.TextField(null=True)
    idempotency_key = fields.CharField(max_length=255, null=True)
    request_hash = fields.TextField(null=True)
    status = fields.CharField(max_length=16, null=True)  # 0002_message_status.sql; user messages only
    status_reason = fields.CharField(max_length=64, null=True)
    output_decision = fields.CharField(max_length=16, null=True)
    tokens_in = fields.IntField(null=True)
    tokens_out = fields.IntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "messages"


class AuditLog(Model):
    """Insert-only from the app; id, ts, prev_hash and hash are set by the chain trigger."""

    id = fields.BigIntField(primary_key=True, generated=False)
    ts = fields.DatetimeField()
    actor = fields.TextField()
    action = fields.TextField()
    target = fields.TextField()
    detail = fields.TextField()
    prev_hash = fields.TextField()
    hash = fields.TextField()

    class Meta:
        table = "audit_log"
