-- Posts gain the state "parked": a post that cannot be examined or built
-- within the worker's time and memory limits (inbox/worker.py). Its
-- reason is in "reason"; "listserv held list" shows it and "held
-- discard" removes it. SQLite cannot change a CHECK constraint in place,
-- so the table is rebuilt (nothing references posts).
CREATE TABLE posts_v8 (
    id              INTEGER PRIMARY KEY,
    inbox_id        INTEGER NOT NULL UNIQUE REFERENCES inbox (id),
    list_address    TEXT    NOT NULL,
    sender          TEXT    NOT NULL,
    subject         TEXT    NOT NULL DEFAULT '',
    size            INTEGER NOT NULL DEFAULT 0,
    rule            TEXT    NOT NULL,
    reason          TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    state           TEXT    NOT NULL
                    CHECK (state IN ('held', 'approved', 'rejected', 'discarded',
                                     'expired', 'parked')),
    decided_at      TEXT,
    decided_by      TEXT    NOT NULL DEFAULT '',
    decision_reason TEXT    NOT NULL DEFAULT '',
    outgoing_id     INTEGER,
    reminded_at     TEXT
);
INSERT INTO posts_v8 SELECT id, inbox_id, list_address, sender, subject, size, rule,
                            reason, created_at, state, decided_at, decided_by,
                            decision_reason, outgoing_id, reminded_at FROM posts;
DROP TABLE posts;
ALTER TABLE posts_v8 RENAME TO posts;
CREATE INDEX posts_by_state ON posts (state, created_at)
