-- Audit trail (SQLite). Keep in step with migrations/postgres/0002_audit.sql.
--
-- audit_log is append-only: the triggers below refuse UPDATE, and refuse DELETE
-- except of entries at or below a recorded retention purge. They stop mistakes
-- and casual edits; someone who can drop triggers is caught by `wardline audit
-- verify` instead (hash chain, Merkle tree, signed checkpoints).

CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY,
    at_ms       INTEGER NOT NULL,
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
    leaf_hash   BLOB NOT NULL,
    chain_hash  BLOB NOT NULL,
    -- HMAC of chain_hash under a key-provider secret: entries written by
    -- Wardline, as opposed to rows added by someone with database access.
    mac         BLOB NOT NULL
) STRICT;
-- Searches page newest first within one organisation.
CREATE INDEX audit_log_org_seq ON audit_log (org_id, seq);
CREATE INDEX audit_log_org_at ON audit_log (org_id, at_ms);
CREATE INDEX audit_log_actor ON audit_log (org_id, actor_id, seq);
CREATE INDEX audit_log_patient ON audit_log (org_id, patient_id, seq);
CREATE INDEX audit_log_device ON audit_log (org_id, device_id, seq);
CREATE INDEX audit_log_target ON audit_log (org_id, target_id, seq);

-- Signed tree heads. `frontier` is the compact range at `size` (32-byte hashes,
-- largest subtree first): it lets the log continue, and proofs be made, after
-- the entries below it were purged.
CREATE TABLE audit_checkpoints (
    size       INTEGER PRIMARY KEY,
    at_ms      INTEGER NOT NULL,
    root       BLOB NOT NULL,
    chain_head BLOB NOT NULL,
    key_id     TEXT NOT NULL,
    signature  BLOB NOT NULL,
    frontier   BLOB NOT NULL
) STRICT;

-- Retention purges: entries with seq <= up_to may be deleted; up_to is always a
-- checkpoint size.
CREATE TABLE audit_purges (
    up_to     INTEGER PRIMARY KEY,
    at_ms     INTEGER NOT NULL,
    cutoff_ms INTEGER NOT NULL
) STRICT;

-- How far each SIEM sink has been sent (at-least-once).
CREATE TABLE audit_export_cursors (
    sink       TEXT PRIMARY KEY,
    last_seq   INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
) STRICT;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
WHEN OLD.seq > COALESCE((SELECT MAX(up_to) FROM audit_purges), 0)
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only; entries leave only by a retention purge'); END;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
CREATE TRIGGER audit_purges_no_update BEFORE UPDATE ON audit_purges
BEGIN SELECT RAISE(ABORT, 'audit_purges is append-only'); END;
CREATE TRIGGER audit_purges_no_delete BEFORE DELETE ON audit_purges
BEGIN SELECT RAISE(ABORT, 'audit_purges is append-only'); END;
