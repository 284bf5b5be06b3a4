-- An inbound SMS is acted on and recorded as handled in one step (issue 19,
-- case 07): a failure between "seen" and "acted on" used to turn the
-- provider's retry into a duplicate and lose a STOP. received_at says the id
-- arrived; handled_at that what it asked for was done. Rows from before this
-- change were handled when they were seen.
ALTER TABLE sms_inbound_seen ADD COLUMN handled_at INTEGER;
UPDATE sms_inbound_seen SET handled_at = received_at;
