-- Every post to a list, and what became of it. The raw mail stays in
-- its inbox row; this row holds the decision and its history.
CREATE TABLE posts (
    id              INTEGER PRIMARY KEY,
    inbox_id        INTEGER NOT NULL UNIQUE REFERENCES inbox (id),
    list_address    TEXT    NOT NULL,
    sender          TEXT    NOT NULL,
    subject         TEXT    NOT NULL DEFAULT '',
    size            INTEGER NOT NULL DEFAULT 0,
    rule            TEXT    NOT NULL,          -- the policy rule that decided first
    reason          TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    state           TEXT    NOT NULL
                    CHECK (state IN ('held', 'approved', 'rejected', 'discarded',
                                     'expired')),
    decided_at      TEXT,
    decided_by      TEXT    NOT NULL DEFAULT '',   -- moderator address, 'policy', 'cli'
    decision_reason TEXT    NOT NULL DEFAULT '',
    outgoing_id     INTEGER,                   -- set once an approved post is queued
    reminded_at     TEXT
);
CREATE INDEX posts_by_state ON posts (state, created_at);
