-- Devices, key packages, conversations and delivery (sqlite). Keep in step with the
-- other engine's 0003_messaging.sql. Message bodies are MLS ciphertext the
-- server cannot read; titles and patient references are sealed by the vault.

ALTER TABLE organisations ADD COLUMN messaging_policy TEXT NOT NULL DEFAULT '{}';

CREATE TABLE devices (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organisations (id),
    user_id      TEXT NOT NULL REFERENCES users (id),
    name         TEXT NOT NULL,
    identity_key BLOB NOT NULL,
    created_at   BIGINT NOT NULL,
    retired_at   BIGINT,
    -- Last inbox position handed out and last one the device acknowledged.
    inbox_seq    BIGINT NOT NULL DEFAULT 0,
    acked_seq    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX devices_user ON devices (org_id, user_id);

CREATE TABLE key_packages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id   TEXT NOT NULL REFERENCES devices (id),
    data        BLOB NOT NULL,
    last_resort BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX key_packages_device ON key_packages (device_id, last_resort);

CREATE TABLE conversations (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organisations (id),
    kind             TEXT NOT NULL,
    dek_id           TEXT NOT NULL REFERENCES data_keys (id),
    title_enc        BLOB,
    patient_ref_enc  BLOB,
    -- For direct conversations: the two user ids, sorted, so a pair has one.
    direct_key       TEXT UNIQUE,
    created_by       TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    epoch            BIGINT NOT NULL DEFAULT 0,
    last_activity_at BIGINT NOT NULL
);
CREATE INDEX conversations_org ON conversations (org_id);

CREATE TABLE conversation_members (
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    user_id         TEXT NOT NULL REFERENCES users (id),
    added_at        BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX conversation_members_user ON conversation_members (user_id);

CREATE TABLE conversation_devices (
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    device_id       TEXT NOT NULL REFERENCES devices (id),
    user_id         TEXT NOT NULL,
    state           TEXT NOT NULL,
    PRIMARY KEY (conversation_id, device_id)
);
CREATE INDEX conversation_devices_device ON conversation_devices (device_id);

CREATE TABLE messages (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    kind            TEXT NOT NULL,
    sender_user     TEXT,
    sender_device   TEXT,
    epoch           BIGINT NOT NULL,
    priority        TEXT NOT NULL,
    body            BLOB,
    -- SHA-256 of the body: the same MLS message is never accepted twice.
    body_hash       BLOB,
    created_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX messages_body ON messages (conversation_id, body_hash);

-- Each device's inbox: what it must receive, in order, and its receipts.
CREATE TABLE inbox (
    device_id       TEXT NOT NULL REFERENCES devices (id),
    seq             BIGINT NOT NULL,
    message_id      TEXT NOT NULL REFERENCES messages (id),
    conversation_id TEXT NOT NULL,
    delivered_at    BIGINT,
    read_at         BIGINT,
    PRIMARY KEY (device_id, seq)
);
CREATE INDEX inbox_message ON inbox (message_id);
CREATE INDEX inbox_conversation ON inbox (device_id, conversation_id);

CREATE TABLE attachments (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    uploader_device TEXT NOT NULL,
    size            BIGINT NOT NULL,
    data            BLOB NOT NULL,
    created_at      BIGINT NOT NULL
);

CREATE TABLE messaging_preferences (
    user_id             TEXT PRIMARY KEY REFERENCES users (id),
    share_read_receipts BIGINT NOT NULL
);
