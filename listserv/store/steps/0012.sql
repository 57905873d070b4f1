-- The members' archive (issue 14): every published post, as the list copy
-- before personalisation, sealed like all stored mail (raw). Numbers are per
-- list and never reused (archive_lists.last_number). thread_id is the id of the
-- first archived post of its thread (In-Reply-To/References), else its own.
-- sender_address is '' and erased = 1 once the sender was erased (DSGVO).
CREATE TABLE archive_lists (
    list_address  TEXT    PRIMARY KEY,
    last_number   INTEGER NOT NULL
);
CREATE TABLE archive (
    id              INTEGER PRIMARY KEY,
    list_address    TEXT    NOT NULL,
    number          INTEGER NOT NULL,
    message_id      TEXT    NOT NULL DEFAULT '',
    posted_at       TEXT    NOT NULL,
    month           TEXT    NOT NULL,
    archived_at     TEXT    NOT NULL,
    subject         TEXT    NOT NULL DEFAULT '',
    sender_address  TEXT    NOT NULL DEFAULT '',
    sender_name     TEXT    NOT NULL DEFAULT '',
    erased          INTEGER NOT NULL DEFAULT 0,
    in_reply_to     TEXT    NOT NULL DEFAULT '',
    thread_id       INTEGER,
    source          TEXT    NOT NULL CHECK (source IN ('published', 'import')),
    post_id         INTEGER,
    size            INTEGER NOT NULL,
    raw             BLOB,
    UNIQUE (list_address, number)
);
CREATE INDEX archive_by_message_id ON archive (list_address, message_id);
CREATE INDEX archive_by_month ON archive (list_address, month, posted_at);
CREATE INDEX archive_by_thread ON archive (thread_id, posted_at);
CREATE INDEX archive_by_sender ON archive (sender_address);
CREATE INDEX archive_by_posted ON archive (list_address, posted_at);
-- Attachments: where each is among the copy's leaf parts; the bytes stay in raw.
CREATE TABLE archive_parts (
    archive_id    INTEGER NOT NULL REFERENCES archive (id) ON DELETE CASCADE,
    position      INTEGER NOT NULL,
    filename      TEXT    NOT NULL,
    content_type  TEXT    NOT NULL,
    size          INTEGER NOT NULL,
    PRIMARY KEY (archive_id, position)
);
-- The search index, rowid = archive.id: plain text (FTS needs it), see
-- docs/architecture.md "The archive" for why and what erasure does to it.
CREATE VIRTUAL TABLE archive_fts USING fts5 (
    subject, sender_name, body, tokenize = 'unicode61 remove_diacritics 0'
)
