-- Member records as the membership issue asks: the address as the person
-- wrote it (local part as given, domain lower-cased; "address" stays the
-- lower-cased key we compare), an optional role (SchuSo, SOFA, MPT, SDS)
-- and employer type, and the delivery status "nomail" (a member who
-- keeps her membership but pauses delivery). SQLite cannot change a
-- CHECK constraint in place, so the table is rebuilt.
CREATE TABLE members_v6 (
    id                   INTEGER PRIMARY KEY,
    list_address         TEXT    NOT NULL,
    address              TEXT    NOT NULL,
    address_as_given     TEXT    NOT NULL DEFAULT '',
    display_name         TEXT    NOT NULL DEFAULT '',
    role                 TEXT    NOT NULL DEFAULT '',
    employer_type        TEXT    NOT NULL DEFAULT '',
    language             TEXT    NOT NULL DEFAULT 'de',
    status               TEXT    NOT NULL DEFAULT 'enabled'
                         CHECK (status IN ('enabled', 'nomail', 'disabled')),
    disabled_reason      TEXT    NOT NULL DEFAULT '',
    bounce_score         REAL    NOT NULL DEFAULT 0,
    last_bounce_at       TEXT,
    joined_at            TEXT    NOT NULL,
    unsubscribe_token    TEXT    UNIQUE,
    disabled_notified_at TEXT,
    bounce_decayed_at    TEXT,
    UNIQUE (list_address, address)
);
INSERT INTO members_v6 (id, list_address, address, address_as_given, display_name,
                        language, status, disabled_reason, bounce_score,
                        last_bounce_at, joined_at, unsubscribe_token,
                        disabled_notified_at, bounce_decayed_at)
    SELECT id, list_address, address, address, display_name, language, status,
           disabled_reason, bounce_score, last_bounce_at, joined_at,
           unsubscribe_token, disabled_notified_at, bounce_decayed_at
    FROM members;
DROP TABLE members;
ALTER TABLE members_v6 RENAME TO members;
-- The SMTP peer of the mail that confirmed (consent proof).
ALTER TABLE consent_log ADD COLUMN peer TEXT NOT NULL DEFAULT ''
