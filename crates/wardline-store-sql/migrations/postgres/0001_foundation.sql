-- Foundation schema (PostgreSQL). Keep in step with migrations/sqlite/0001_foundation.sql.
-- Columns ending in _enc hold AES-256-GCM ciphertext (see src/vault.rs).

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE data_keys (
    id         TEXT PRIMARY KEY,
    org_id     TEXT,
    kek_id     TEXT NOT NULL,
    wrapped    BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX data_keys_kek ON data_keys (kek_id);

CREATE TABLE organisations (
    id                     TEXT PRIMARY KEY,
    name                   TEXT NOT NULL,
    slug                   TEXT NOT NULL UNIQUE,
    idle_timeout_secs      BIGINT NOT NULL,
    absolute_lifetime_secs BIGINT NOT NULL,
    mfa_required           BIGINT NOT NULL,
    created_at             BIGINT NOT NULL
);

CREATE TABLE users (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organisations (id),
    dek_id           TEXT NOT NULL REFERENCES data_keys (id),
    email_bidx       TEXT NOT NULL,
    email_enc        BYTEA NOT NULL,
    display_name_enc BYTEA NOT NULL,
    phone_enc        BYTEA,
    roles            TEXT NOT NULL,
    status           TEXT NOT NULL,
    password_hash    TEXT NOT NULL,
    totp_secret_enc  BYTEA,
    totp_enabled     BIGINT NOT NULL,
    totp_last_step   BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (org_id, email_bidx)
);

CREATE TABLE recovery_codes (
    org_id    TEXT NOT NULL,
    user_id   TEXT NOT NULL REFERENCES users (id),
    code_hash BYTEA NOT NULL,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE sessions (
    id                TEXT PRIMARY KEY,
    org_id            TEXT NOT NULL,
    user_id           TEXT NOT NULL REFERENCES users (id),
    device_id         TEXT NOT NULL,
    token_hash        BYTEA NOT NULL UNIQUE,
    created_at        BIGINT NOT NULL,
    last_seen_at      BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    idle_timeout_secs BIGINT NOT NULL,
    mfa_complete      BIGINT NOT NULL,
    revoked_at        BIGINT
);
CREATE INDEX sessions_user ON sessions (org_id, user_id);

CREATE TABLE mfa_challenges (
    token_hash BYTEA PRIMARY KEY,
    org_id     TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    attempts   BIGINT NOT NULL
);

CREATE TABLE login_throttle (
    key             TEXT PRIMARY KEY,
    failures        BIGINT NOT NULL,
    last_failure_at BIGINT NOT NULL
);
