-- Audit trail (PostgreSQL). Keep in step with migrations/sqlite/0002_audit.sql.
--
-- audit_log is append-only: the triggers below refuse UPDATE and TRUNCATE, and
-- refuse DELETE except of entries at or below a recorded retention purge. They
-- stop mistakes and casual edits; someone who can drop triggers is caught by
-- `wardline audit verify` instead (hash chain, Merkle tree, signed checkpoints).

CREATE TABLE audit_log (
    seq         BIGINT PRIMARY KEY,
    at_ms       BIGINT NOT NULL,
    org_id      TEXT,
    actor_kind  TEXT NOT NULL,
    actor_id    TEXT,
    device_id   TEXT,
    source_ip   TEXT,
    user_agent  TEXT,
    action      TEXT NOT NULL,
    target_type TEXT,
    target_id   TEXT,
    patient_id  TEXT,
    outcome     TEXT NOT NULL,
    reason      TEXT,
    leaf_hash   BYTEA NOT NULL,
    chain_hash  BYTEA NOT NULL,
    -- HMAC of chain_hash under a key-provider secret: entries written by
    -- Wardline, as opposed to rows added by someone with database access.
    mac         BYTEA NOT NULL
);
-- Searches page newest first within one organisation.
CREATE INDEX audit_log_org_seq ON audit_log (org_id, seq);
CREATE INDEX audit_log_org_at ON audit_log (org_id, at_ms);
CREATE INDEX audit_log_actor ON audit_log (org_id, actor_id, seq);
CREATE INDEX audit_log_patient ON audit_log (org_id, patient_id, seq);
CREATE INDEX audit_log_device ON audit_log (org_id, device_id, seq);
CREATE INDEX audit_log_target ON audit_log (org_id, target_id, seq);

CREATE TABLE audit_checkpoints (
    size       BIGINT PRIMARY KEY,
    at_ms      BIGINT NOT NULL,
    root       BYTEA NOT NULL,
    chain_head BYTEA NOT NULL,
    key_id     TEXT NOT NULL,
    signature  BYTEA NOT NULL,
    frontier   BYTEA NOT NULL
);

CREATE TABLE audit_purges (
    up_to     BIGINT PRIMARY KEY,
    at_ms     BIGINT NOT NULL,
    cutoff_ms BIGINT NOT NULL
);

CREATE TABLE audit_export_cursors (
    sink       TEXT PRIMARY KEY,
    last_seq   BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);

CREATE FUNCTION wardline_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;

CREATE FUNCTION wardline_audit_delete_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.seq > COALESCE((SELECT MAX(up_to) FROM audit_purges), 0) THEN
        RAISE EXCEPTION 'audit_log is append-only; entries leave only by a retention purge';
    END IF;
    RETURN OLD;
END $$;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION wardline_append_only();
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION wardline_audit_delete_guard();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION wardline_append_only();
CREATE TRIGGER audit_checkpoints_no_change BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION wardline_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION wardline_append_only();
CREATE TRIGGER audit_purges_no_change BEFORE UPDATE OR DELETE ON audit_purges
    FOR EACH ROW EXECUTE FUNCTION wardline_append_only();
CREATE TRIGGER audit_purges_no_truncate BEFORE TRUNCATE ON audit_purges
    FOR EACH STATEMENT EXECUTE FUNCTION wardline_append_only();
