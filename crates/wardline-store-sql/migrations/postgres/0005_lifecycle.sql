-- Message lifecycle and device control (postgres). Keep in step with the other
-- engine's 0005_lifecycle.sql.

ALTER TABLE organisations ADD COLUMN lifecycle_policy TEXT NOT NULL DEFAULT '{}';
ALTER TABLE organisations ADD COLUMN device_policy TEXT NOT NULL DEFAULT '{}';

-- What each device last reported about itself (device policy).
ALTER TABLE devices ADD COLUMN platform TEXT;
ALTER TABLE devices ADD COLUMN os_version TEXT;
ALTER TABLE devices ADD COLUMN compromised BIGINT NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN posture_at BIGINT;

-- A conversation's own retention and lifespan (JSON; empty: the policy's), and
-- the blind index of its patient reference, so that a legal hold on a patient
-- finds its conversations without opening them.
ALTER TABLE conversations ADD COLUMN lifecycle TEXT NOT NULL DEFAULT '{}';
ALTER TABLE conversations ADD COLUMN patient_ref_bidx TEXT;

-- Each stored body is sealed under its own data key: deleting the key
-- (crypto-shredding) leaves any copy of the ciphertext unreadable.
ALTER TABLE messages ADD COLUMN dek_id TEXT;
-- Ephemeral messages: when they must be gone everywhere.
ALTER TABLE messages ADD COLUMN expires_at BIGINT;
ALTER TABLE messages ADD COLUMN recalled_at BIGINT;
-- Recall notices: the message they recall.
ALTER TABLE messages ADD COLUMN recalls TEXT;
CREATE INDEX messages_conversation_created ON messages (conversation_id, created_at);
ALTER TABLE attachments ADD COLUMN dek_id TEXT;
CREATE INDEX attachments_conversation_created ON attachments (conversation_id, created_at);

-- The legal hold register. target is a user or conversation id, or for a
-- patient the blind index of the reference; what a person reads (the
-- reference, matter and reasons) is sealed under the hold's data key.
CREATE TABLE legal_holds (
    id                 TEXT PRIMARY KEY,
    org_id             TEXT NOT NULL REFERENCES organisations (id),
    scope              TEXT NOT NULL,
    target             TEXT NOT NULL,
    dek_id             TEXT NOT NULL REFERENCES data_keys (id),
    target_enc         BYTEA NOT NULL,
    matter_enc         BYTEA NOT NULL,
    reason_enc         BYTEA NOT NULL,
    placed_by          TEXT NOT NULL,
    placed_at          BIGINT NOT NULL,
    released_by        TEXT,
    released_at        BIGINT,
    release_reason_enc BYTEA
);
CREATE INDEX legal_holds_org ON legal_holds (org_id, released_at);

-- Signed receipts of deletion runs (also in the audit trail).
CREATE TABLE deletion_receipts (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES organisations (id),
    started_at BIGINT NOT NULL,
    receipt    TEXT NOT NULL
);
CREATE INDEX deletion_receipts_org ON deletion_receipts (org_id, started_at);

-- Remote wipe orders, one per device, and the device's confirmation.
CREATE TABLE device_wipes (
    device_id      TEXT PRIMARY KEY REFERENCES devices (id),
    org_id         TEXT NOT NULL REFERENCES organisations (id),
    user_id        TEXT NOT NULL,
    requested_by   TEXT NOT NULL,
    requested_at   BIGINT NOT NULL,
    reason         TEXT NOT NULL,
    sessions_ended BIGINT NOT NULL,
    conversations  BIGINT NOT NULL,
    confirmed_at   BIGINT
);
CREATE INDEX device_wipes_org ON device_wipes (org_id, requested_at);

-- Leases of periodic jobs, so that one node at a time runs each.
CREATE TABLE job_leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    lease_until BIGINT NOT NULL
);
