-- Hardening after the 2026-11-30 security findings (PostgreSQL). Keep in step
-- with migrations/sqlite/0007_hardening.sql.

-- C1: a retention purge is a signed record (the audit key, over
-- wardline_proto::audit::purge_message) naming its retention period and its
-- own `audit.purge` entry. The triggers below refuse a purge record without
-- them and any delete newer than the purge's cutoff; they stop mistakes and
-- casual edits. Someone who can drop triggers is caught by `wardline audit
-- verify`, which checks the signature, the age, the event and legal holds.
ALTER TABLE audit_purges
    ADD COLUMN retention_days BIGINT,
    ADD COLUMN event_seq BIGINT,
    ADD COLUMN key_id TEXT,
    ADD COLUMN signature BYTEA;

CREATE FUNCTION wardline_audit_purge_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.signature IS NULL OR octet_length(NEW.signature) <> 64 OR NEW.key_id IS NULL
       OR NEW.retention_days IS NULL OR NEW.retention_days < 365
       OR NEW.cutoff_ms > NEW.at_ms - NEW.retention_days * 86400000
       OR NOT EXISTS (SELECT 1 FROM audit_checkpoints WHERE size = NEW.up_to AND at_ms < NEW.cutoff_ms)
       OR NOT EXISTS (SELECT 1 FROM audit_log WHERE seq = NEW.event_seq AND seq > NEW.up_to
                      AND action = 'audit.purge' AND target_id = NEW.up_to::text) THEN
        RAISE EXCEPTION 'audit_purges: a purge needs a signed record at a checkpoint older than its cutoff, a retention of at least 365 days and its audit.purge entry';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER audit_purges_checked BEFORE INSERT ON audit_purges
    FOR EACH ROW EXECUTE FUNCTION wardline_audit_purge_check();

CREATE OR REPLACE FUNCTION wardline_audit_delete_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.seq > COALESCE((SELECT MAX(up_to) FROM audit_purges), 0)
       OR OLD.at_ms >= COALESCE((SELECT cutoff_ms FROM audit_purges ORDER BY up_to DESC LIMIT 1), 0) THEN
        RAISE EXCEPTION 'audit_log is append-only; entries leave only by a retention purge';
    END IF;
    RETURN OLD;
END $$;

-- H2: attempt limits are taken before the comparison, in one statement
-- (`take_attempt`): `held_until` is the end of a back-off or of an attempt in
-- flight, so concurrent attempts under one key are evaluated one at a time.
ALTER TABLE login_throttle ADD COLUMN held_until BIGINT NOT NULL DEFAULT 0;

-- M1: devices that signed in to an account (NIST SP 800-63B §5.2.2). A
-- remembered device's sign-ins are throttled on their own key, so failed
-- guesses at the account from elsewhere do not lock it out.
CREATE TABLE remembered_devices (
    token_hash TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES organisations (id),
    user_id    TEXT NOT NULL REFERENCES users (id),
    device_id  TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX remembered_devices_user ON remembered_devices (org_id, user_id);
