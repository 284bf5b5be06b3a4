-- The analytics report (issue 23) reads a time range of messages (every
-- column it needs is in the index, so the table itself is not read) and of
-- routed messages; the audit search filters by action, which no index
-- served (a full pass over the trail on PostgreSQL).
CREATE INDEX messages_report ON messages (created_at, kind, conversation_id, sender_user);
CREATE INDEX routed_messages_org_created ON routed_messages (org_id, created_at);
CREATE INDEX audit_log_action ON audit_log (org_id, action, seq);
