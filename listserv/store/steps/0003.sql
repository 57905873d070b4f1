-- One message to send: a reply, a notice, or one approved list post.
CREATE TABLE outgoing (
    id            INTEGER PRIMARY KEY,
    created_at    TEXT    NOT NULL,
    kind          TEXT    NOT NULL,   -- 'reply' | 'notice' | 'post'
    list_address  TEXT    NOT NULL,
    inbox_id      INTEGER,            -- the inbox row that caused it
    message_id    TEXT    NOT NULL DEFAULT '',
    mail_from     TEXT    NOT NULL,   -- envelope sender (VERP posts: the bounces address)
    verp          INTEGER NOT NULL DEFAULT 0,
    personalize   INTEGER NOT NULL DEFAULT 0,
    raw           BLOB                -- the copy as it goes out, before DKIM
);
-- One row per recipient of an outgoing message: its delivery state.
CREATE TABLE deliveries (
    id            INTEGER PRIMARY KEY,
    outgoing_id   INTEGER NOT NULL REFERENCES outgoing (id) ON DELETE CASCADE,
    rcpt          TEXT    NOT NULL,
    domain        TEXT    NOT NULL,
    state         TEXT    NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'sending', 'sent', 'deferred', 'failed')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_attempt  TEXT,
    last_reply    TEXT    NOT NULL DEFAULT '',
    updated_at    TEXT,
    UNIQUE (outgoing_id, rcpt)
);
CREATE INDEX deliveries_todo ON deliveries (state, next_attempt, outgoing_id, domain);
