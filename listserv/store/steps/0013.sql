-- A post's recipients are queued in chunks (issue 16), so the first copy
-- leaves while the rest are still being written. fanout_after is the last
-- members.id queued while more may follow; NULL once every member is queued
-- (and for every mail queued before this step). Each chunk and the cursor
-- move in one transaction: a crash between chunks resumes at the cursor.
ALTER TABLE outgoing ADD COLUMN fanout_after INTEGER
