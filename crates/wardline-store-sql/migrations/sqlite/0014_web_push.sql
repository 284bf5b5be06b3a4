-- Web Push subscriptions (issue 22; RFC 8030, payloads encrypted per RFC 8291,
-- the server identified by VAPID, RFC 8292). One per device: the browser's
-- push service endpoint and the keys the payload is encrypted to. Not secret
-- on their own: a push service takes only requests signed with the
-- organisation's VAPID key, which the vault keeps. A device gets pushes only
-- while it is not retired and one of its sessions is live (sign-out stops them).
CREATE TABLE push_subscriptions (
    device_id  TEXT PRIMARY KEY REFERENCES devices (id),
    org_id     TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    endpoint   TEXT NOT NULL,
    p256dh     BLOB NOT NULL,
    auth       BLOB NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX push_subscriptions_user ON push_subscriptions (org_id, user_id);
