-- DKIM proofs already used (store/replay.py): a moderator's signed mail
-- acts at once only the first time. Both the signed Message-ID and the
-- signature's b= are kept, each as its own row, until expires_at
-- (longer than the freshness window, so an old mail is refused by its
-- Date before its row is gone). inbox_id lets the same inbox row,
-- processed again after a crash, keep its proof.
CREATE TABLE dkim_seen (
    kind       TEXT    NOT NULL CHECK (kind IN ('message-id', 'signature')),
    value      TEXT    NOT NULL,
    inbox_id   INTEGER NOT NULL,
    seen_at    TEXT    NOT NULL,
    expires_at TEXT    NOT NULL,
    PRIMARY KEY (kind, value)
);
CREATE INDEX dkim_seen_by_expiry ON dkim_seen (expires_at)
