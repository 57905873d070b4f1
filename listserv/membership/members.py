"""Member rows and the consent log: the data side of membership.

Functions take an open transaction (``db``) so that a membership change,
its consent record and the mail announcing it commit together. Every
change writes a ``consent_log`` row: when, which event, by which token and
which mail. That is the DSGVO proof of consent, and the history that
``export`` hands to a member who asks what is stored about them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from listserv.clock import iso
from listserv.store.database import Store


@dataclass(frozen=True)
class Member:
    list_address: str
    address: str
    display_name: str
    language: str
    status: str
    joined_at: str
    bounce_score: float
    as_given: str = ""
    role: str = ""
    employer_type: str = ""


def _member(row: aiosqlite.Row) -> Member:
    return Member(row["list_address"], row["address"], row["display_name"], row["language"],
                  row["status"], row["joined_at"], row["bounce_score"],
                  row["address_as_given"] or row["address"], row["role"], row["employer_type"])


async def get(db: aiosqlite.Connection, list_address: str, address: str) -> Member | None:
    async with db.execute(
        "SELECT * FROM members WHERE list_address = ? AND address = ?",
        (list_address, address.lower()),
    ) as cur:
        row = await cur.fetchone()
    return None if row is None else _member(row)


async def log_consent(
    db: aiosqlite.Connection,
    *,
    list_address: str,
    address: str,
    event: str,
    now: datetime,
    token_hash: str = "",
    message_id: str = "",
    detail: str = "",
    peer: str = "",
) -> None:
    await db.execute(
        "INSERT INTO consent_log (list_address, address, event, at, token_hash, message_id,"
        " detail, peer) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (list_address, address.lower(), event, iso(now), token_hash, message_id, detail, peer),
    )


async def add(
    db: aiosqlite.Connection,
    *,
    list_address: str,
    address: str,
    now: datetime,
    display_name: str = "",
    language: str = "de",
    event: str,
    token_hash: str = "",
    message_id: str = "",
    detail: str = "",
    peer: str = "",
    role: str = "",
    employer_type: str = "",
) -> bool:
    """Add a member (enabled); False when already a member (nothing changes).

    ``address`` is kept as given (local part as written, domain lower-cased)
    for delivery and display; the lower-cased form is the key we compare.
    """
    local, _, domain = address.rpartition("@")
    cursor = await db.execute(
        "INSERT OR IGNORE INTO members (list_address, address, address_as_given, display_name,"
        " role, employer_type, language, joined_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (list_address, address.lower(), f"{local}@{domain.lower()}", display_name, role,
         employer_type, language, iso(now)),
    )
    if cursor.rowcount != 1:
        return False
    await log_consent(db, list_address=list_address, address=address, event=event, now=now,
                      token_hash=token_hash, message_id=message_id, detail=detail, peer=peer)
    return True


async def set_status(db: aiosqlite.Connection, *, list_address: str, address: str,
                     status: str) -> bool:
    """Pause (``nomail``) or resume (``enabled``) delivery; resuming clears a bounce stop."""
    if status == "enabled":
        cursor = await db.execute(
            "UPDATE members SET status = 'enabled', disabled_reason = '', bounce_score = 0,"
            " disabled_notified_at = NULL WHERE list_address = ? AND address = ?",
            (list_address, address.lower()))
    else:
        cursor = await db.execute(
            "UPDATE members SET status = ? WHERE list_address = ? AND address = ?",
            (status, list_address, address.lower()))
    return cursor.rowcount == 1


async def remove(
    db: aiosqlite.Connection,
    *,
    list_address: str,
    address: str,
    now: datetime,
    event: str,
    token_hash: str = "",
    message_id: str = "",
    detail: str = "",
    peer: str = "",
) -> bool:
    cursor = await db.execute(
        "DELETE FROM members WHERE list_address = ? AND address = ?",
        (list_address, address.lower()),
    )
    if cursor.rowcount != 1:
        return False
    await log_consent(db, list_address=list_address, address=address, event=event, now=now,
                      token_hash=token_hash, message_id=message_id, detail=detail, peer=peer)
    return True


async def all_members(store: Store, list_address: str) -> list[Member]:
    rows = await store.fetchall(
        "SELECT * FROM members WHERE list_address = ? ORDER BY address", (list_address,)
    )
    return [_member(r) for r in rows]
