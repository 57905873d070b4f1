"""Has this DKIM proof been used before? The replay table of moderator mail.

A signed mail proves its author wrote it once, not that she wants it to
act again: whoever holds a copy (any recipient) could send it to us a
second time. So a proof acts only the first time its Message-ID *and*
its signature ``b=`` are seen; the same inbox row, processed again after
a crash, keeps its proof. Rows expire after ``KEEP`` (longer than the
freshness window in ``mail.dkim_proof``, so a mail too old to be checked
here is already refused by its Date); ``forget_expired`` is called by the
daily retention job.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import aiosqlite

from listserv.clock import iso

KEEP = timedelta(days=3)


async def first_use(
    db: aiosqlite.Connection, *, message_id: str, signature: str, inbox_id: int, now: datetime
) -> bool:
    """True (and remembered) when neither value was used by another inbox row."""
    keys = [("message-id", message_id.strip()), ("signature", signature.strip())]
    if not all(value for _, value in keys):
        return False
    for kind, value in keys:
        async with db.execute("SELECT inbox_id FROM dkim_seen WHERE kind = ? AND value = ?",
                              (kind, value)) as cursor:
            row = await cursor.fetchone()
        if row is not None and row[0] != inbox_id:
            return False
    await db.executemany(
        "INSERT OR IGNORE INTO dkim_seen (kind, value, inbox_id, seen_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?)",
        [(kind, value, inbox_id, iso(now), iso(now + KEEP)) for kind, value in keys])
    return True


async def forget_expired(db: aiosqlite.Connection, now: datetime) -> int:
    cursor = await db.execute("DELETE FROM dkim_seen WHERE expires_at < ?", (iso(now),))
    return cursor.rowcount or 0
