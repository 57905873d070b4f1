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
) -> tuple[int, int]:
    """Queue an approved post for every enabled member; return (id, recipients).

    The recipient rows are made by one INSERT … SELECT over the members
    table, so the member list is never loaded into memory, however long.
    """
    cursor = await db.execute(
        "INSERT INTO outgoing (created_at, kind, list_address, inbox_id, message_id,"
        " mail_from, verp, personalize, raw) VALUES (?, 'post', ?, ?, ?, ?, ?, ?, seal(?))",
        (iso(now), list_address, inbox_id, message_id, mail_from, int(verp),
         int(personalize), raw),
    )
    outgoing_id = cursor.lastrowid
    assert outgoing_id is not None
    fanned = await db.execute(
        "INSERT INTO deliveries (outgoing_id, rcpt, domain)"
        " SELECT ?, coalesce(nullif(address_as_given, ''), address),"
        "        substr(address, instr(address, '@') + 1)"
        " FROM members WHERE list_address = ? AND status = 'enabled' ORDER BY id",
        (outgoing_id, list_address),
    )
    return outgoing_id, fanned.rowcount


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
