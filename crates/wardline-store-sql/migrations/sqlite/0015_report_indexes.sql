-- The analytics report (issue 23) reads a time range of messages and of
-- routed messages: without these it reads every row of both tables.
CREATE INDEX messages_created ON messages (created_at);
CREATE INDEX routed_messages_org_created ON routed_messages (org_id, created_at);
