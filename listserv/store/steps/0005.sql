-- Bounce upkeep (bounce_upkeep.py). disabled_notified_at: when the member
-- and the moderators were told that delivery to her was stopped for
-- bounces; whoever enables a member again sets it back to NULL.
-- bounce_decayed_at: when the score was last halved after a quiet week,
-- so a second run of the daily job on the same day changes nothing.
ALTER TABLE members ADD COLUMN disabled_notified_at TEXT;
ALTER TABLE members ADD COLUMN bounce_decayed_at TEXT
