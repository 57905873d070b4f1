"""Putting mail into the outgoing queue, inside the caller's transaction.

Whoever decides to send something (a reply to a request, a notice to the
moderators, an approved post) writes it here in the *same* transaction as
the decision itself. So a decision and its mail are committed together or
not at all, and the sender, which only reads these tables, can never send
for a decision that was rolled back, nor miss one that was committed.

The mail is stored sealed (``seal(?)``, see ``store.seal``): a queued answer
carries a token, and a database copy must not give it away.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import aiosqlite

from listserv.clock import iso


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


async def enqueue(
    db: aiosqlite.Connection,
    *,
    now: datetime,
    kind: str,
    list_address: str,
    mail_from: str,
    rcpts: Iterable[str],
    raw: bytes,
    message_id: str = "",
    inbox_id: int | None = None,
) -> int:
    """Queue one ready message (a reply or a notice) for ``rcpts``."""
    cursor = await db.execute(
        "INSERT INTO outgoing (created_at, kind, list_address, inbox_id, message_id,"
        " mail_from, raw) VALUES (?, ?, ?, ?, ?, ?, seal(?))",
        (iso(now), kind, list_address, inbox_id, message_id, mail_from, raw),
    )
    outgoing_id = cursor.lastrowid
    await db.executemany(
        "INSERT OR IGNORE INTO deliveries (outgoing_id, rcpt, domain) VALUES (?, ?, ?)",
        [(outgoing_id, r, domain_of(r)) for r in rcpts],
    )
    assert outgoing_id is not None
    return outgoing_id


FIRST_CHUNK = 500  # recipients queued with the post itself: the sender starts on these
CHUNK = 5000  # recipients per later transaction: few commits, each short for the sender
ALL = 2**62


async def enqueue_post(
    db: aiosqlite.Connection,
    *,
    now: datetime,
    list_address: str,
    mail_from: str,
    raw: bytes,
    message_id: str,
    inbox_id: int | None,
    verp: bool,
    personalize: bool,
    first_chunk: int | None = None,
) -> tuple[int, int]:
    """Queue an approved post and its first ``first_chunk`` members; return (id, recipients).

    With ``first_chunk`` (publishing gives ``FIRST_CHUNK``) the rest follow with
    ``queue_more`` in transactions of their own, so the sender can start on
    the first copies while a long list is still being written; without it
    every member is queued here. The recipient rows are made by INSERT … SELECT over the members
    table, so the member list is never loaded into memory, however long.
    """
    cursor = await db.execute(
        "INSERT INTO outgoing (created_at, kind, list_address, inbox_id, message_id,"
        " mail_from, verp, personalize, raw, fanout_after)"
        " VALUES (?, 'post', ?, ?, ?, ?, ?, ?, seal(?), 0)",
        (iso(now), list_address, inbox_id, message_id, mail_from, int(verp),
         int(personalize), raw),
    )
    outgoing_id = cursor.lastrowid
    assert outgoing_id is not None
    count, _ = await queue_more(db, outgoing_id, first_chunk or ALL)
    return outgoing_id, count


async def queue_more(db: aiosqlite.Connection, outgoing_id: int, limit: int = CHUNK
                     ) -> tuple[int, bool]:
    """Queue the next ``limit`` enabled members after the post's cursor; (rows, all queued).

    Call it inside a transaction: the rows and the cursor move together, so a
    crash between two chunks neither loses nor repeats a member.

    Both queries walk the members table in ``id`` order from the cursor
    (``+list_address`` keeps SQLite off the (list, address) index): each
    chunk reads only its own rows, where the index made every chunk read and
    sort the whole list (30 ms a chunk at 100,000 members, twenty chunks). A
    list much smaller than the table pays one walk to the table's end per post
    (12 ms per 100,000 rows of other lists).
    """
    # An UPDATE, not a SELECT: it locks the post's row until this commit, so a second
    # daemon on PostgreSQL finishing the same fan-out waits and reads the moved cursor.
    async with db.execute("UPDATE outgoing SET fanout_after = fanout_after WHERE id = ?"
                          " RETURNING list_address, fanout_after", (outgoing_id,)) as cur:
        row = await cur.fetchone()
    if row is None or row[1] is None:
        return 0, True
    list_address, after = row[0], row[1]
    async with db.execute(
        "SELECT max(id), count(*) FROM (SELECT id FROM members WHERE +list_address = ?"
        " AND status = 'enabled' AND id > ? ORDER BY id LIMIT ?) AS page",
        (list_address, after, limit),
    ) as cur:
        upto, found = await cur.fetchone()  # type: ignore[misc]
    fanned = 0
    if found:
        cursor = await db.execute(
            "INSERT INTO deliveries (outgoing_id, rcpt, domain)"
            " SELECT ?, coalesce(nullif(address_as_given, ''), address),"
            "        substr(address, instr(address, '@') + 1)"
            " FROM members WHERE +list_address = ? AND status = 'enabled'"
            " AND id > ? AND id <= ? ORDER BY id",
            (outgoing_id, list_address, after, upto),
        )
        fanned = cursor.rowcount
    done = found < limit
    await db.execute("UPDATE outgoing SET fanout_after = ? WHERE id = ?",
                     (None if done else upto, outgoing_id))
    return fanned, done


async def strip_delivered(db: aiosqlite.Connection, outgoing_ids: Iterable[int]) -> None:
    """An answer or notice whose every copy is final loses its stored body.

    They carry tokens (Reply-To, Subject, body): once the relay has them,
    the database has no reason to keep them (``secure_delete`` zeroes the
    freed space). Posts keep theirs until retention: they carry no token.
    """
    done = sorted(outgoing_ids)
    if not done:
        return
    marks = ",".join("?" * len(done))
    await db.execute(
        f"UPDATE outgoing SET raw = NULL WHERE id IN ({marks}) AND kind != 'post'"
        " AND raw IS NOT NULL AND NOT EXISTS (SELECT 1 FROM deliveries d"
        "   WHERE d.outgoing_id = outgoing.id AND d.state NOT IN ('sent', 'failed'))", done)
