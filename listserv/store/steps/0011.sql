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
