"""Ordered schema migrations. Append only: never edit a step that has shipped.

A database records the highest step applied in ``schema_version``; opening
it applies the missing steps in order, each in its own transaction, so a
database already in use keeps its rows when a later release adds tables.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
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
        """,
    ),
    (
        2,
        """
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
        """,
    ),
    (
        3,
        """
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
        """,
    ),
    (
        4,
        """
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
        """,
    ),
    (
        5,
        """
        -- Bounce upkeep (bounce_upkeep.py). disabled_notified_at: when the member
        -- and the moderators were told that delivery to her was stopped for
        -- bounces; whoever enables a member again sets it back to NULL.
        -- bounce_decayed_at: when the score was last halved after a quiet week,
        -- so a second run of the daily job on the same day changes nothing.
        ALTER TABLE members ADD COLUMN disabled_notified_at TEXT;
        ALTER TABLE members ADD COLUMN bounce_decayed_at TEXT
        """,
    ),
    (
        6,
        """
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
        """,
    ),
    (
        7,
        """
        -- Names arrived as raw RFC 2047 encoded words (=?iso-8859-1?Q?M=FCller?=)
        -- before names were decoded where they enter; decode the ones stored,
        -- in members and in the requests still waiting for a reply.
        -- rfc2047_decode is mail.message.decode_words, registered by the store.
        UPDATE members SET display_name = rfc2047_decode(display_name)
            WHERE display_name LIKE '%=?%?=%';
        UPDATE tokens SET data = json_set(data, '$.name',
                                          rfc2047_decode(json_extract(data, '$.name')))
            WHERE json_valid(data) AND json_extract(data, '$.name') LIKE '%=?%?=%'
        """,
    ),
    (
        8,
        """
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
        """,
    ),
    (
        9,
        """
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
        """,
    ),
    (
        10,
        """
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
        """,
    ),
    (
        11,
        """
        -- The web face (listserv/web): single-use login links and the sessions
        -- they open. Both hold only the SHA-256 of their secret: whoever reads
        -- the database or a backup can neither log in nor take over a session.
        -- A link is used once (used_at set in the same UPDATE that checks it) and
        -- expires after minutes; a session expires after an hour of its own.
        -- What a session may do is read from the configuration at each request
        -- (a moderator's desk only while her address is a configured moderator).
        CREATE TABLE login_links (
            token_hash   TEXT PRIMARY KEY,
            address      TEXT NOT NULL,
            created_at   TEXT NOT NULL,
            expires_at   TEXT NOT NULL,
            used_at      TEXT
        );
        CREATE INDEX login_links_by_expiry ON login_links (expires_at);
        CREATE TABLE web_sessions (
            id_hash      TEXT PRIMARY KEY,
            address      TEXT NOT NULL,
            csrf         TEXT NOT NULL,              -- the form token of this session
            created_at   TEXT NOT NULL,
            expires_at   TEXT NOT NULL
        );
        CREATE INDEX web_sessions_by_expiry ON web_sessions (expires_at)
        """,
    ),
    (
        12,
        """
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
        """,
    ),
    (
        13,
        """
        -- A post's recipients are queued in chunks (issue 16), so the first copy
        -- leaves while the rest are still being written. fanout_after is the last
        -- members.id queued while more may follow; NULL once every member is queued
        -- (and for every mail queued before this step). Each chunk and the cursor
        -- move in one transaction: a crash between chunks resumes at the cursor.
        ALTER TABLE outgoing ADD COLUMN fanout_after INTEGER
        """,
    ),
]
