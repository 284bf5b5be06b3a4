-- Clinical routing (sqlite). Keep in step with the other engine's 0006_routing.sql.
-- Names of departments, care teams and clinical roles are the organisation's
-- structure, not PHI: stored as text so the directory can be searched.

-- Escalation ladders, alert throttling, break-glass duration (JSON; '{}': defaults).
ALTER TABLE organisations ADD COLUMN routing_policy TEXT NOT NULL DEFAULT '{}';

CREATE TABLE departments (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES organisations (id),
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE care_teams (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES organisations (id),
    department_id TEXT REFERENCES departments (id),
    name          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    UNIQUE (org_id, name)
);
CREATE TABLE care_team_members (
    team_id  TEXT NOT NULL REFERENCES care_teams (id),
    user_id  TEXT NOT NULL REFERENCES users (id),
    added_at BIGINT NOT NULL,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX care_team_members_user ON care_team_members (user_id);

-- A clinical role ("Cardiology on-call", "4 West charge nurse"): who holds it,
-- where a page goes when nobody covers it (fallback role), and its own
-- escalation ladder (JSON; NULL: the organisation's).
CREATE TABLE clinical_roles (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organisations (id),
    department_id    TEXT REFERENCES departments (id),
    name             TEXT NOT NULL,
    fallback_role_id TEXT REFERENCES clinical_roles (id),
    escalation       TEXT,
    created_at       BIGINT NOT NULL,
    UNIQUE (org_id, name)
);
CREATE TABLE role_holders (
    role_id  TEXT NOT NULL REFERENCES clinical_roles (id),
    user_id  TEXT NOT NULL REFERENCES users (id),
    added_at BIGINT NOT NULL,
    PRIMARY KEY (role_id, user_id)
);
CREATE INDEX role_holders_user ON role_holders (user_id);

CREATE TABLE presence (
    user_id    TEXT PRIMARY KEY REFERENCES users (id),
    org_id     TEXT NOT NULL REFERENCES organisations (id),
    status     TEXT NOT NULL,
    until_at   BIGINT,
    updated_at BIGINT NOT NULL
);

-- Who covers a role when. source: 'manual', or 'ical:<UID>' for shifts an
-- import made (a re-import replaces them).
CREATE TABLE shifts (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES organisations (id),
    role_id        TEXT NOT NULL REFERENCES clinical_roles (id),
    user_id        TEXT NOT NULL REFERENCES users (id),
    backup_user_id TEXT REFERENCES users (id),
    starts_at      BIGINT NOT NULL,
    ends_at        BIGINT NOT NULL,
    source         TEXT NOT NULL
);
CREATE INDEX shifts_role_time ON shifts (role_id, starts_at);

-- A role's subscribed schedule feed (an iCalendar URL, re-imported hourly).
-- The URL often carries the scheduling system's access token: sealed.
CREATE TABLE schedule_feeds (
    role_id         TEXT PRIMARY KEY REFERENCES clinical_roles (id),
    org_id          TEXT NOT NULL REFERENCES organisations (id),
    dek_id          TEXT NOT NULL REFERENCES data_keys (id),
    url_enc         BLOB NOT NULL,
    host            TEXT NOT NULL,
    days            BIGINT NOT NULL,
    subscribed_at   BIGINT NOT NULL,
    next_fetch_at   BIGINT NOT NULL,
    lease_until     BIGINT,
    last_fetched_at BIGINT,
    last_result     TEXT
);
CREATE INDEX schedule_feeds_due ON schedule_feeds (next_fetch_at);

-- A conversation a page to a role opened, and the patient's care team.
ALTER TABLE conversations ADD COLUMN role_id TEXT;
ALTER TABLE conversations ADD COLUMN routed_user TEXT;
ALTER TABLE conversations ADD COLUMN routed_via TEXT;
ALTER TABLE conversations ADD COLUMN care_team_id TEXT;
-- Server alerts (escalations): what the alert is about, as JSON without content.
ALTER TABLE messages ADD COLUMN alert TEXT;

-- Urgent and STAT messages (and every message to a role): the role it was
-- sent to and who it resolved to, acknowledgement, and the escalation ladder
-- as a durable job (next_at, lease_until) that a restart picks up again.
CREATE TABLE routed_messages (
    message_id      TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES organisations (id),
    conversation_id TEXT NOT NULL,
    sender_user     TEXT NOT NULL,
    priority        TEXT NOT NULL,
    role_id         TEXT,
    resolved_user   TEXT,
    resolved_via    TEXT,
    department_id   TEXT,
    state           TEXT NOT NULL,
    step            BIGINT NOT NULL DEFAULT 0,
    next_at         BIGINT,
    lease_until     BIGINT,
    notified        TEXT NOT NULL DEFAULT '[]',
    merged_into     TEXT,
    escalations     BIGINT NOT NULL DEFAULT 0,
    acked_by        TEXT,
    acked_device    TEXT,
    acked_at        BIGINT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX routed_messages_due ON routed_messages (state, next_at);
CREATE INDEX routed_messages_org ON routed_messages (org_id, created_at);
CREATE INDEX routed_messages_conversation ON routed_messages (conversation_id, state);

CREATE TABLE escalation_events (
    id         TEXT PRIMARY KEY,
    message_id TEXT NOT NULL REFERENCES routed_messages (message_id),
    at         BIGINT NOT NULL,
    action     TEXT NOT NULL,
    users      TEXT NOT NULL,
    sms        BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX escalation_events_message ON escalation_events (message_id, at);

-- Break-glass access to a patient's conversation: the stated reason is
-- sealed; the grant ends (membership removed) at expires_at.
CREATE TABLE break_glass (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES organisations (id),
    conversation_id TEXT NOT NULL,
    user_id         TEXT NOT NULL REFERENCES users (id),
    dek_id          TEXT NOT NULL REFERENCES data_keys (id),
    reason_enc      BLOB NOT NULL,
    granted_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    ended_at        BIGINT
);
CREATE INDEX break_glass_open ON break_glass (ended_at, expires_at);

-- What compliance officers are told (break-glass); ids only.
CREATE TABLE notifications (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES organisations (id),
    kind       TEXT NOT NULL,
    subject    TEXT NOT NULL,
    detail     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX notifications_org ON notifications (org_id, created_at);
