-- One row per accepted (message, recipient) pair: a mail to the list
-- and to L-request@D in one transaction is two pieces of work.
CREATE TABLE inbox (
    id            INTEGER PRIMARY KEY,
    received_at   TEXT    NOT NULL,          -- ISO 8601 UTC
    peer          TEXT    NOT NULL,          -- SMTP client ip:port
    helo          TEXT    NOT NULL DEFAULT '',
    mail_from     TEXT    NOT NULL,          -- '' for the null sender <>
    rcpt          TEXT    NOT NULL,          -- the envelope recipient as routed
    list_address  TEXT    NOT NULL,
    role          TEXT    NOT NULL,          -- addresses.Role
    extension     TEXT    NOT NULL DEFAULT '',  -- token or VERP part after '+'
    message_id    TEXT    NOT NULL DEFAULT '',
    size          INTEGER NOT NULL,
    raw           BLOB,                      -- NULL once retention has removed it
    state         TEXT    NOT NULL DEFAULT 'new'
                  CHECK (state IN ('new', 'processing', 'done', 'failed')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    not_before    TEXT,                      -- retry a failed attempt after this
    handled_at    TEXT,
    outcome       TEXT    NOT NULL DEFAULT ''   -- what the processor did, or the error
);
CREATE INDEX inbox_todo ON inbox (state, id);
