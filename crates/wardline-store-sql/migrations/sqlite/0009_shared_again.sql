-- A message shared again for members who joined after it (issue 18, item 5)
-- keeps the original's identity: the copy names the original, and carries
-- its time and priority, so a recipient acknowledges, recalls, replies to
-- and reads the original, and a recall reaches every copy. Copies stored
-- before this change name nothing (they stay plain messages).
ALTER TABLE messages ADD COLUMN shared_again TEXT;
ALTER TABLE messages ADD COLUMN original_created_at INTEGER;
CREATE INDEX messages_shared_again ON messages (shared_again) WHERE shared_again IS NOT NULL;
