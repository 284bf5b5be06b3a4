-- Hardening after the 2026-11-30 security findings (SQLite). Keep in step with
-- migrations/postgres/0007_hardening.sql.

-- C1: a retention purge is a signed record (the audit key, over
-- wardline_proto::audit::purge_message) naming its retention period and its
-- own `audit.purge` entry. The triggers below refuse a purge record without
-- them and any delete newer than the purge's cutoff; they stop mistakes and
-- casual edits. Someone who can drop triggers is caught by `wardline audit
-- verify`, which checks the signature, the age, the event and legal holds.
ALTER TABLE audit_purges ADD COLUMN retention_days INTEGER;
ALTER TABLE audit_purges ADD COLUMN event_seq INTEGER;
ALTER TABLE audit_purges ADD COLUMN key_id TEXT;
ALTER TABLE audit_purges ADD COLUMN signature BLOB;

CREATE TRIGGER audit_purges_checked BEFORE INSERT ON audit_purges
WHEN NEW.signature IS NULL OR length(NEW.signature) != 64 OR NEW.key_id IS NULL
  OR NEW.retention_days IS NULL OR NEW.retention_days < 365
  OR NEW.cutoff_ms > NEW.at_ms - NEW.retention_days * 86400000
  OR NOT EXISTS (SELECT 1 FROM audit_checkpoints WHERE size = NEW.up_to AND at_ms < NEW.cutoff_ms)
  OR NOT EXISTS (SELECT 1 FROM audit_log WHERE seq = NEW.event_seq AND seq > NEW.up_to
                 AND action = 'audit.purge' AND target_id = CAST(NEW.up_to AS TEXT))
BEGIN SELECT RAISE(ABORT, 'audit_purges: a purge needs a signed record at a checkpoint older than its cutoff, a retention of at least 365 days and its audit.purge entry'); END;

DROP TRIGGER audit_log_no_delete;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
WHEN OLD.seq > COALESCE((SELECT MAX(up_to) FROM audit_purges), 0)
  OR OLD.at_ms >= COALESCE((SELECT cutoff_ms FROM audit_purges ORDER BY up_to DESC LIMIT 1), 0)
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only; entries leave only by a retention purge'); END;

-- H2: attempt limits are taken before the comparison, in one statement
-- (`take_attempt`): `held_until` is the end of a back-off or of an attempt in
-- flight, so concurrent attempts under one key are evaluated one at a time.
ALTER TABLE login_throttle ADD COLUMN held_until INTEGER NOT NULL DEFAULT 0;

-- M1: devices that signed in to an account (NIST SP 800-63B §5.2.2). A
-- remembered device's sign-ins are throttled on their own key, so failed
-- guesses at the account from elsewhere do not lock it out.
CREATE TABLE remembered_devices (
    token_hash TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES organisations (id),
    user_id    TEXT NOT NULL REFERENCES users (id),
    device_id  TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX remembered_devices_user ON remembered_devices (org_id, user_id);
