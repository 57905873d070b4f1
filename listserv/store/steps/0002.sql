-- Members of a list. An address is stored lowercased (the form we compare);
-- the display name and language come from the member's own request.
CREATE TABLE members (
    id                INTEGER PRIMARY KEY,
    list_address      TEXT    NOT NULL,
    address           TEXT    NOT NULL,
    display_name      TEXT    NOT NULL DEFAULT '',
    language          TEXT    NOT NULL DEFAULT 'de',
    status            TEXT    NOT NULL DEFAULT 'enabled'
                      CHECK (status IN ('enabled', 'disabled')),
    disabled_reason   TEXT    NOT NULL DEFAULT '',   -- 'bounces' or ''
    bounce_score      REAL    NOT NULL DEFAULT 0,
    last_bounce_at    TEXT,
    joined_at         TEXT    NOT NULL,
    unsubscribe_token TEXT    UNIQUE,                -- sha256 of the one-click token
    UNIQUE (list_address, address)
);
-- Secret, single-use, expiring tokens. Only a SHA-256 of the token is
-- stored: a copy of the database does not let anyone confirm anything.
CREATE TABLE tokens (
    token_hash    TEXT    PRIMARY KEY,
    action        TEXT    NOT NULL,   -- membership.Action / moderation
    list_address  TEXT    NOT NULL,
    address       TEXT    NOT NULL,   -- whom the action is about
    requester     TEXT    NOT NULL DEFAULT '',
    data          TEXT    NOT NULL DEFAULT '{}',   -- JSON: name, language, reason ...
    created_at    TEXT    NOT NULL,
    expires_at    TEXT    NOT NULL,
    used_at       TEXT,
    used_by       TEXT    NOT NULL DEFAULT '',
    outcome       TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX tokens_expiry ON tokens (expires_at) WHERE used_at IS NULL;
-- DSGVO proof of consent and of every membership change: who, when,
-- by which token and which mail. Never a body.
CREATE TABLE consent_log (
    id            INTEGER PRIMARY KEY,
    list_address  TEXT    NOT NULL,
    address       TEXT    NOT NULL,
    event         TEXT    NOT NULL,
    at            TEXT    NOT NULL,
    token_hash    TEXT    NOT NULL DEFAULT '',
    message_id    TEXT    NOT NULL DEFAULT '',
    detail        TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX consent_by_address ON consent_log (address);
-- Automatic answers sent, for the per-address daily cap.
CREATE TABLE reply_log (
    id        INTEGER PRIMARY KEY,
    address   TEXT    NOT NULL,
    at        TEXT    NOT NULL,
    kind      TEXT    NOT NULL
);
CREATE INDEX reply_log_by_address ON reply_log (address, at);
