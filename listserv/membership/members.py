"""Member rows and the consent log: the data side of membership.

Functions take an open transaction (``db``) so that a membership change,
its consent record and the mail announcing it commit together. Every
change writes a ``consent_log`` row: when, which event, by which token and
which mail. That is the DSGVO proof of consent, and the history that
``export`` hands to a member who asks what is stored about them.
"""

from __future__ import annotations

import hashlib
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


async def export(store: Store, address: str) -> dict[str, object]:
    """Everything stored about one address (DSGVO Art. 15), without mail bodies."""
    address = address.lower()
    memberships = await store.fetchall(
        "SELECT list_address, address_as_given AS address, display_name, role, employer_type,"
        " language, status, disabled_reason, bounce_score, last_bounce_at, joined_at"
        " FROM members WHERE address = ?", (address,))
    consent = await store.fetchall(
        "SELECT list_address, event, at, message_id, peer, detail FROM consent_log"
        " WHERE address = ? ORDER BY id", (address,))
    messages = await store.fetchall(
        "SELECT id, received_at, role, list_address, message_id, state, outcome FROM inbox"
        " WHERE mail_from = ? ORDER BY id", (address,))
    return {
        "address": address,
        "memberships": [dict(r) for r in memberships],
        "consent_log": [dict(r) for r in consent],
        "messages_received": [dict(r) for r in messages],
    }


async def erase(store: Store, address: str, now: datetime) -> dict[str, int]:
    """Forget one address (DSGVO Art. 17): memberships, tokens, history, stored mail.

    One line stays in the consent log: that an erasure happened, without
    the address (its hash), so an audit can show the request was honoured.
    """
    address = address.lower()
    counts: dict[str, int] = {}
    async with store.transaction() as db:
        for table, sql in [
            ("members", "DELETE FROM members WHERE address = ?"),
            ("tokens", "DELETE FROM tokens WHERE address = ? OR requester = ?"),
            ("consent_log", "DELETE FROM consent_log WHERE address = ?"),
            ("reply_log", "DELETE FROM reply_log WHERE address = ?"),
            ("inbox", "DELETE FROM inbox WHERE mail_from = ?"),
            ("deliveries", "DELETE FROM deliveries WHERE rcpt = ?"),
            ("login_links", "DELETE FROM login_links WHERE address = ?"),
            ("web_sessions", "DELETE FROM web_sessions WHERE address = ?"),
        ]:
            params = (address, address) if sql.count("?") == 2 else (address,)
            cursor = await db.execute(sql, params)
            counts[table] = cursor.rowcount
        digest = hashlib.sha256(address.encode()).hexdigest()[:16]
        await db.execute(
            "INSERT INTO consent_log (list_address, address, event, at, detail)"
            " VALUES ('', ?, 'erased', ?, 'all data of this address deleted on request')",
            (f"sha256:{digest}", iso(now)),
        )
    return counts
