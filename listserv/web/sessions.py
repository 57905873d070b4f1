"""Server-side sessions of the web face: a random id in a cookie, its hash in the table.

A session is opened only by a used login link (``membership.logins``) and
names one address. The table ``web_sessions`` holds the SHA-256 of the id,
never the id itself, with the session's CSRF token and its expiry; ending
it (logout, expiry) deletes the row, so a stolen cookie stops working then.
What the session may do is decided per request from the configuration
(``site.Visitor``): a member's pages for a member's address, the desk only
for an address that is a list's moderator.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from listserv.clock import iso
from listserv.commands.tokens import token_hash
from listserv.store.database import Store

COOKIE = "ls_session"


@dataclass(frozen=True)
class Session:
    address: str
    csrf: str
    expires_at: str


async def open_session(store: Store, address: str, now: datetime, minutes: int
                       ) -> tuple[str, Session]:
    """A new session for ``address``: the cookie's value (its only copy) and the row."""
    session_id = secrets.token_urlsafe(32)
    session = Session(address=address.lower(), csrf=secrets.token_urlsafe(32),
                      expires_at=iso(now + timedelta(minutes=minutes)))
    async with store.transaction() as db:
        await db.execute(
            "INSERT INTO web_sessions (id_hash, address, csrf, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (token_hash(session_id), session.address, session.csrf, iso(now),
             session.expires_at))
    return session_id, session


async def find(store: Store, session_id: str | None, now: datetime) -> Session | None:
    """The live session of a cookie value, or None (unknown, ended or expired)."""
    if not session_id or len(session_id) > 100:
        return None
    row = await store.fetchone(
        "SELECT address, csrf, expires_at FROM web_sessions WHERE id_hash = ?"
        " AND expires_at > ?", (token_hash(session_id), iso(now)))
    return None if row is None else Session(row["address"], row["csrf"], row["expires_at"])


async def end(store: Store, session_id: str | None) -> None:
    if session_id:
        async with store.transaction() as db:
            await db.execute("DELETE FROM web_sessions WHERE id_hash = ?",
                             (token_hash(session_id),))
