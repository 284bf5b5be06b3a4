-- Notices to staff that are not messages of a conversation (issue 18, item
-- 8): a patient replied, and the staff who wrote to that patient are told.
-- Content-free: what kind, about which patient, when; seen when the user
-- opens that patient's thread.
CREATE TABLE staff_notices (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    patient_id  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    seen_at     BIGINT
);
CREATE INDEX staff_notices_unseen ON staff_notices (user_id, created_at) WHERE seen_at IS NULL;
