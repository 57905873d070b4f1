-- Notices to a moderator, for the daily cap in total and per kind (issue 12,
-- class 5). A notice over the cap is not sent: its row has suppressed = 1
-- until a summary names it (summarised_at), so the coordinator learns how
-- many there were without getting each one.
CREATE TABLE notice_log (
    id             INTEGER PRIMARY KEY,
    list_address   TEXT    NOT NULL,
    rcpt           TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    at             TEXT    NOT NULL,
    suppressed     INTEGER NOT NULL DEFAULT 0,
    summarised_at  TEXT
);
-- The cap counts the sent ones (suppressed = 0) of the last day: at most the
-- cap of them, however long the flood, so the count stays cheap.
CREATE INDEX notice_log_by_rcpt ON notice_log (list_address, rcpt, suppressed, at);
CREATE INDEX notice_log_open ON notice_log (suppressed, summarised_at)
