-- Patients and patient texting (postgres). Keep in step with the other engine's
-- 0004_patients.sql. Every patient field, every patient message and every
-- outbound SMS (number and text: a notice holds its link) is sealed by the
-- vault; link tokens, portal sessions and codes are stored as hashes.

ALTER TABLE organisations ADD COLUMN patient_policy TEXT NOT NULL DEFAULT '{}';

CREATE TABLE patients (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organisations (id),
    dek_id       TEXT NOT NULL REFERENCES data_keys (id),
    name_enc     BYTEA NOT NULL,
    dob_enc      BYTEA NOT NULL,
    mrn_enc      BYTEA,
    phone_enc    BYTEA NOT NULL,
    language_enc BYTEA NOT NULL,
    -- Blind indexes: inbound SMS are matched by number, MRNs are unique.
    phone_index  TEXT NOT NULL,
    mrn_index    TEXT,
    created_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    UNIQUE (org_id, mrn_index)
);
CREATE INDEX patients_phone ON patients (org_id, phone_index);

-- Consent history: appended, never changed; `seq` keeps the order of
-- decisions made within one second.
CREATE TABLE patient_consents (
    seq        BIGSERIAL PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    org_id     TEXT NOT NULL REFERENCES organisations (id),
    patient_id TEXT NOT NULL REFERENCES patients (id),
    scope      TEXT,
    action     TEXT NOT NULL,
    method     TEXT NOT NULL,
    actor_kind TEXT NOT NULL,
    actor_id   TEXT NOT NULL,
    at         BIGINT NOT NULL
);
CREATE INDEX patient_consents_patient ON patient_consents (org_id, patient_id, seq);

-- Numbers that texted STOP (per organisation: its sender number).
CREATE TABLE sms_opt_outs (
    org_id      TEXT NOT NULL REFERENCES organisations (id),
    phone_index TEXT NOT NULL,
    since       BIGINT NOT NULL,
    PRIMARY KEY (org_id, phone_index)
);

-- Inbound SMS already handled, by the provider's id: providers retry a
-- webhook they think failed, and a replayed STOP or START must not act twice.
CREATE TABLE sms_inbound_seen (
    org_id      TEXT NOT NULL REFERENCES organisations (id),
    provider_id TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, provider_id)
);

-- The organisation's own template texts (placeholders only, no PHI).
CREATE TABLE sms_templates (
    org_id     TEXT NOT NULL REFERENCES organisations (id),
    key        TEXT NOT NULL,
    language   TEXT NOT NULL,
    body       TEXT NOT NULL,
    class      TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, key, language)
);

-- `seq` orders a thread (several messages can share a second).
CREATE TABLE patient_messages (
    seq         BIGSERIAL PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    org_id      TEXT NOT NULL REFERENCES organisations (id),
    patient_id  TEXT NOT NULL REFERENCES patients (id),
    direction   TEXT NOT NULL,
    author_user TEXT,
    via         TEXT NOT NULL,
    body_enc    BYTEA NOT NULL,
    -- 1: body_enc holds the writer's client ciphertext (key only in the link's fragment).
    client_sealed BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    read_at     BIGINT
);
CREATE INDEX patient_messages_thread ON patient_messages (org_id, patient_id, seq);

CREATE TABLE secure_links (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES organisations (id),
    patient_id      TEXT NOT NULL REFERENCES patients (id),
    token_hash      TEXT NOT NULL UNIQUE,
    created_by      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    max_uses        BIGINT NOT NULL,
    uses            BIGINT NOT NULL DEFAULT 0,
    failures        BIGINT NOT NULL DEFAULT 0,
    locked_at       BIGINT,
    revoked_at      BIGINT,
    -- The pending one-time code after a correct date of birth, bound to the
    -- browser that gave it by a challenge in its form.
    challenge_hash  TEXT,
    code_hash       TEXT,
    code_expires_at BIGINT
);
CREATE INDEX secure_links_patient ON secure_links (org_id, patient_id);

CREATE TABLE portal_sessions (
    token_hash TEXT PRIMARY KEY,
    link_id    TEXT NOT NULL REFERENCES secure_links (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE sms_outbox (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organisations (id),
    patient_id  TEXT,
    dek_id      TEXT NOT NULL REFERENCES data_keys (id),
    from_number TEXT NOT NULL,
    to_enc      BYTEA NOT NULL,
    body_enc    BYTEA NOT NULL,
    -- A client-sealed message's key fragment, appended to the link when the
    -- SMS goes out and erased once it has gone (or failed for good).
    fragment_enc BYTEA,
    phone_index TEXT NOT NULL,
    kind        TEXT NOT NULL,
    template    TEXT,
    status      TEXT NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    send_after  BIGINT NOT NULL,
    lease_until BIGINT,
    provider_id TEXT UNIQUE,
    error       TEXT,
    created_at  BIGINT NOT NULL,
    sent_at     BIGINT,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX sms_outbox_due ON sms_outbox (status, send_after);
CREATE INDEX sms_outbox_patient ON sms_outbox (org_id, patient_id, created_at);
