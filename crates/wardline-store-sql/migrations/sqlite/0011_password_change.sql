-- A password an administrator set is temporary (issue 18, item 8): the user
-- must choose their own at first sign-in before anything else. 1 until then.
-- Users from before this change chose theirs already (or were told to).
ALTER TABLE users ADD COLUMN password_change_required INTEGER NOT NULL DEFAULT 0;
