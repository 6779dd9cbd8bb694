-- Lab-level schema `lab`: the tenant registry and the lab-admin audit log (tenant create/delete).
-- Only seclab_owner reaches it; the same audit trigger as in tenant schemas (see 0001_chat.sql).

CREATE TABLE tenants (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{1,30}$'),
    created_at  timestamptz NOT NULL DEFAULT now()
);

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
