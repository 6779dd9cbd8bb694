-- Message lifecycle for the asynchronous worker (issue "AI gateway and worker": an accepted user
-- message is never lost). Applied by `python -m app.db.admin sync` to every tenant schema.
--
-- status (user messages only; NULL on assistant rows):
--   pending   accepted and committed, waiting for the worker (the sweeper re-enqueues old ones)
--   answered  exactly one assistant reply exists (reply_to = this id)
--   failed    retries exhausted (dead-lettered) or the token budget refused it; a DLQ replay may answer it
--   blocked   refused by the prompt-injection guard, never sent to a model (OWASP LLM01:2025)
-- status_reason: a short category (upstream, database, budget-exhausted, ...), never message text.

ALTER TABLE messages
    ADD COLUMN status          text CHECK (status IN ('pending', 'answered', 'failed', 'blocked')),
    ADD COLUMN status_reason   text CHECK (length(status_reason) <= 64),
    ADD COLUMN output_decision text CHECK (output_decision IN ('allow', 'redact', 'withhold')),
    ADD COLUMN tokens_in       integer CHECK (tokens_in >= 0),
    ADD COLUMN tokens_out      integer CHECK (tokens_out >= 0);

-- Rows written before this migration were answered synchronously inside the request.
UPDATE messages m SET status = CASE
        WHEN m.guard_decision = 'block' THEN 'blocked'
        WHEN EXISTS (SELECT 1 FROM messages r WHERE r.reply_to = m.id) THEN 'answered'
        ELSE 'failed' END,
    status_reason = CASE
        WHEN m.guard_decision <> 'block' AND NOT EXISTS (SELECT 1 FROM messages r WHERE r.reply_to = m.id)
        THEN 'no-reply-before-migration' END
WHERE m.role = 'user';

ALTER TABLE messages ADD CONSTRAINT messages_status_user_only CHECK ((role = 'user') = (status IS NOT NULL));

-- The sweeper's query: pending messages, oldest first.
CREATE INDEX messages_status_created ON messages (status, created_at);

-- At most one reply per user message, enforced by the database itself: the worker's check-and-set
-- is the first guard against a doubled answer, this index the last (at-least-once delivery,
-- exactly-once effect).
CREATE UNIQUE INDEX messages_one_reply ON messages (reply_to) WHERE reply_to IS NOT NULL;
