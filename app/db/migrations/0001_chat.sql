-- Tenant schema: chat tables and the append-only, hash-chained audit log.
-- Applied by `python -m app.db.admin sync` as seclab_owner with search_path = tenant_<name>,
-- once per schema, recorded in schema_migrations. Names stay unqualified on purpose.

CREATE TABLE conversations (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- cursor order, never exposed raw
    id          uuid NOT NULL UNIQUE,                              -- public id (not guessable)
    owner_sub   text NOT NULL CHECK (length(owner_sub) BETWEEN 1 AND 255),
    title       text NOT NULL DEFAULT '' CHECK (length(title) <= 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversations_owner_seq ON conversations (owner_sub, seq);

CREATE TABLE messages (
    seq              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               uuid NOT NULL UNIQUE,
    conversation_id  uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role             text NOT NULL CHECK (role IN ('user', 'assistant')),
    author_sub       text NOT NULL CHECK (length(author_sub) BETWEEN 1 AND 255),
    content          text NOT NULL,
    guard_decision   text CHECK (guard_decision IN ('allow', 'flag', 'block')),
    guard_reasons    jsonb NOT NULL DEFAULT '[]'::jsonb,
    reply_to         uuid REFERENCES messages (id) ON DELETE CASCADE,
    provider         text,
    idempotency_key  text CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    request_hash     text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    -- A retried POST can never store a message twice, even when Redis is down.
    CONSTRAINT messages_idempotency UNIQUE (conversation_id, author_sub, idempotency_key)
);
CREATE INDEX messages_conversation_seq ON messages (conversation_id, seq);

-- Append-only audit log. Canonical text of a row (hashed with SHA-256, hex):
--   f(id) '|' f(ts) '|' f(actor) '|' f(action) '|' f(target) '|' f(detail) '|' f(prev_hash)
--   where f(v) = length(v) || ':' || v (length in characters) and ts is UTC
--   'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'. The first row's prev_hash is 64 zeros.
-- app/db/audit.py recomputes the same form in Python, independently of this trigger.
CREATE TABLE audit_log (
    id         bigint PRIMARY KEY,
    ts         timestamptz NOT NULL,
    actor      text NOT NULL,
    action     text NOT NULL,
    target     text NOT NULL DEFAULT '',
    detail     text NOT NULL DEFAULT '{}',
    prev_hash  text NOT NULL,
    hash       text NOT NULL
);

CREATE FUNCTION audit_chain() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $fn$
DECLARE
    last_id   bigint;
    last_hash text;
    canon     text;
BEGIN
    -- Serialize writers of this table so two transactions cannot chain to the same row.
    PERFORM pg_advisory_xact_lock(hashtext(TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME));
    EXECUTE format('SELECT id, hash FROM %I.%I ORDER BY id DESC LIMIT 1', TG_TABLE_SCHEMA, TG_TABLE_NAME)
        INTO last_id, last_hash;
    NEW.id := coalesce(last_id, 0) + 1;
    NEW.ts := date_trunc('microseconds', clock_timestamp());
    NEW.prev_hash := coalesce(last_hash, repeat('0', 64));
    canon := concat_ws('|',
        length(NEW.id::text) || ':' || NEW.id::text,
        '27:' || to_char(NEW.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        length(NEW.actor) || ':' || NEW.actor,
        length(NEW.action) || ':' || NEW.action,
        length(NEW.target) || ':' || NEW.target,
        length(NEW.detail) || ':' || NEW.detail,
        length(NEW.prev_hash) || ':' || NEW.prev_hash);
    NEW.hash := encode(sha256(convert_to(canon, 'UTF8')), 'hex');
    RETURN NEW;
END
$fn$;

CREATE FUNCTION audit_forbid_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $fn$
BEGIN
    RAISE EXCEPTION 'audit log is append-only: % refused on %.%', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$fn$;

CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_chain();
CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_forbid_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_forbid_change();
