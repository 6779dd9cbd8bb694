"""Celery worker: model generation off the request path, retries, dead-letter stream, pending sweeper.

Invariant (docs/ai.md): an accepted user message is never lost. The API stores it as `pending` in
PostgreSQL *before* enqueueing; the task is idempotent (answers a message once, check-and-set in
the DB); it acks late; a task that exhausts its retries goes to the `seclab:dlq` stream; a periodic
sweeper re-enqueues `pending` messages that nobody picked up (Redis down at enqueue time).
"""
