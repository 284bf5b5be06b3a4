-- Foundation schema (SQLite). Keep in step with migrations/postgres/0001_foundation.sql:
-- same tables, same columns, same constraints; only the type names differ.
-- Columns ending in _enc hold AES-256-GCM ciphertext (see src/vault.rs).

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE data_keys (
    id         TEXT PRIMARY KEY,
    org_id     TEXT,
    kek_id     TEXT NOT NULL,
    wrapped    BLOB NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX data_keys_kek ON data_keys (kek_id);

CREATE TABLE organisations (
    id                     TEXT PRIMARY KEY,
    name                   TEXT NOT NULL,
    slug                   TEXT NOT NULL UNIQUE,
    idle_timeout_secs      INTEGER NOT NULL,
    absolute_lifetime_secs INTEGER NOT NULL,
    mfa_required           INTEGER NOT NULL,
    created_at             INTEGER NOT NULL
) STRICT;

CREATE TABLE users (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organisations (id),
    dek_id           TEXT NOT NULL REFERENCES data_keys (id),
    email_bidx       TEXT NOT NULL,
    email_enc        BLOB NOT NULL,
    display_name_enc BLOB NOT NULL,
    phone_enc        BLOB,
    roles            TEXT NOT NULL,
    status           TEXT NOT NULL,
    password_hash    TEXT NOT NULL,
    totp_secret_enc  BLOB,
    totp_enabled     INTEGER NOT NULL,
    totp_last_step   INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (org_id, email_bidx)
) STRICT;

CREATE TABLE recovery_codes (
    org_id    TEXT NOT NULL,
    user_id   TEXT NOT NULL REFERENCES users (id),
    code_hash BLOB NOT NULL,
    PRIMARY KEY (user_id, code_hash)
) STRICT;

CREATE TABLE sessions (
    id                TEXT PRIMARY KEY,
    org_id            TEXT NOT NULL,
    user_id           TEXT NOT NULL REFERENCES users (id),
    device_id         TEXT NOT NULL,
    token_hash        BLOB NOT NULL UNIQUE,
    created_at        INTEGER NOT NULL,
    last_seen_at      INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL,
    idle_timeout_secs INTEGER NOT NULL,
    mfa_complete      INTEGER NOT NULL,
    revoked_at        INTEGER
) STRICT;
CREATE INDEX sessions_user ON sessions (org_id, user_id);

CREATE TABLE mfa_challenges (
    token_hash BLOB PRIMARY KEY,
    org_id     TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    attempts   INTEGER NOT NULL
) STRICT;

CREATE TABLE login_throttle (
    key             TEXT PRIMARY KEY,
    failures        INTEGER NOT NULL,
    last_failure_at INTEGER NOT NULL
) STRICT;
