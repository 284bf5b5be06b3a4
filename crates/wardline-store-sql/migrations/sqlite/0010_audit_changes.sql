-- What an administrative action changed, field by field (issue 18, item 7):
-- a user's roles, a policy's members, before and after, as canonical JSON
-- (`[{"field":…,"before":…,"after":…}]`). Part of the event the Merkle leaf
-- commits to; NULL for other events, which then hash as they always did.
ALTER TABLE audit_log ADD COLUMN changes TEXT;
