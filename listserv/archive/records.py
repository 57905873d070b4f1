"""Writing the archive: a post kept, posts expired, a person erased from it, her posts exported.

Every function runs inside the caller's transaction (``Store.transaction``),
so a post is archived in the same commit that queues its copies: a crash
leaves both or neither. The copy is stored sealed (``seal()``, like all
stored mail); its subject, sender name and text go into ``archive_fts``
in plain text, because a search index cannot search what it cannot read.
That is why erasure rewrites the index rows and then merges the index
(``optimize``), before ``Store.scrub`` zeroes what is freed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import aiosqlite

from listserv.archive.extract import ERASED_NAME, Extract, anonymised, extract, redact
from listserv.archive.query import index_text, month_of
from listserv.clock import iso
from listserv.mail.mentions import names


async def known(db: aiosqlite.Connection, list_address: str, message_id: str) -> bool:
    """Is a post with this Message-ID archived for the list already?"""
    if not message_id:
        return False
    async with db.execute("SELECT 1 FROM archive WHERE list_address = ? AND message_id = ?",
                          (list_address, message_id)) as cur:
        return await cur.fetchone() is not None


async def record(db: aiosqlite.Connection, *, list_address: str, raw: bytes, found: Extract,
                 now: datetime, source: str, post_id: int | None = None) -> int:
    """Archive one post; return its number in the list's archive."""
    async with db.execute(
        "INSERT INTO archive_lists (list_address, last_number) VALUES (?, 1)"
        " ON CONFLICT (list_address) DO UPDATE SET last_number = archive_lists.last_number + 1"
        " RETURNING last_number", (list_address,)) as cur:
        row = await cur.fetchone()
    assert row is not None
    number = int(row[0])
    posted = found.posted_at if found.posted_at and found.posted_at <= now + timedelta(days=1) \
        else now
    parents = [found.in_reply_to, *reversed(found.references)]
    thread_id = None
    for parent in [p for p in parents if p][:11]:
        async with db.execute("SELECT thread_id FROM archive WHERE list_address = ?"
                              " AND message_id = ? LIMIT 1", (list_address, parent)) as cur:
            hit = await cur.fetchone()
        if hit is not None:
            thread_id = hit[0]
            break
    cursor = await db.execute(
        "INSERT INTO archive (list_address, number, message_id, posted_at, month, archived_at,"
        " subject, sender_address, sender_name, in_reply_to, thread_id, source, post_id, size,"
        " raw) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, seal(?))",
        (list_address, number, found.message_id, iso(posted), month_of(posted), iso(now),
         found.subject, found.sender_address, found.sender_name, found.in_reply_to, thread_id,
         source, post_id, len(raw), raw))
    archive_id = cursor.lastrowid
    if thread_id is None:
        await db.execute("UPDATE archive SET thread_id = id WHERE id = ?", (archive_id,))
    await _index(db, archive_id, found)
    return number


async def _index(db: aiosqlite.Connection, archive_id: int | None, found: Extract) -> None:
    await db.executemany(
        "INSERT INTO archive_parts (archive_id, position, filename, content_type, size)"
        " VALUES (?, ?, ?, ?, ?)",
        [(archive_id, p.position, p.filename, p.content_type, p.size) for p in found.parts])
    await db.execute(
        "INSERT INTO archive_fts (rowid, subject, sender_name, body) VALUES (?, ?, ?, ?)",
        (archive_id, index_text(found.subject), index_text(found.sender_name),
         index_text(found.body)))


async def _delete(db: aiosqlite.Connection, ids: Sequence[int]) -> int:
    for archive_id in ids:
        await db.execute("DELETE FROM archive_fts WHERE rowid = ?", (archive_id,))
        await db.execute("DELETE FROM archive WHERE id = ?", (archive_id,))
    return len(ids)


async def expire(db: aiosqlite.Connection, list_address: str, days: int, now: datetime) -> int:
    """Delete the list's posts older than ``days`` (``archive_days``; 0 keeps them)."""
    if days <= 0:
        return 0
    async with db.execute("SELECT id FROM archive WHERE list_address = ? AND posted_at < ?",
                          (list_address, iso(now - timedelta(days=days)))) as cur:
        ids = [r[0] for r in await cur.fetchall()]
    return await _delete(db, ids)


async def naming(db: aiosqlite.Connection, address: str, after: int = 0) -> tuple[list[int], int]:
    """Ids of archived posts after ``after`` that name ``address`` anywhere; and the last id read.

    Her own posts by the sender column; anyone's post that names her in a
    header, the text or an attachment by reading the copy as a client would
    (``mail.mentions``), so an upper-case or encoded spelling is found too.
    """
    found, last = [], after
    async with db.execute("SELECT id, sender_address, unseal(raw) AS raw FROM archive"
                          " WHERE id > ? ORDER BY id", (after,)) as cur:
        async for row in cur:
            last = row["id"]
            if row["sender_address"] == address or names(row["raw"], address):
                found.append(row["id"])
    return found, last


async def forget(db: aiosqlite.Connection, address: str, ids: Sequence[int], *,
                 people: list[str], delete_lists: frozenset[str]) -> dict[str, int]:
    """Erase ``address`` (and her names ``people``) from the archived posts ``ids``.

    Her own posts are deleted on a list with ``archive_erasure = "delete"``;
    otherwise each post stays as "ehemaliges Mitglied": sender fields
    emptied, the copy rebuilt without her (``extract.anonymised``), the
    index row rewritten from it. Then the index is merged, so no old
    segment keeps her terms; ``Store.scrub`` afterwards zeroes the free pages.
    """
    async with db.execute("SELECT DISTINCT sender_name FROM archive WHERE sender_address = ?",
                          (address,)) as cur:
        people = [*people, *[r[0] for r in await cur.fetchall()]]
    people = sorted({p for p in people if p.strip()}, key=len, reverse=True)
    deleted = anonymised_count = 0
    for archive_id in ids:
        async with db.execute("SELECT list_address, sender_address, sender_name,"
                              " unseal(raw) AS raw FROM archive WHERE id = ?",
                              (archive_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            continue
        own = row["sender_address"] == address
        if own and row["list_address"] in delete_lists:
            deleted += await _delete(db, [archive_id])
            continue
        raw = anonymised(row["raw"] or b"", address, people, row["list_address"], own=own)
        name = ERASED_NAME if own else redact(row["sender_name"], address, people)
        found = replace(extract(raw), sender_name=name)
        await db.execute("DELETE FROM archive_parts WHERE archive_id = ?", (archive_id,))
        await db.execute("DELETE FROM archive_fts WHERE rowid = ?", (archive_id,))
        await db.execute(
            "UPDATE archive SET raw = seal(?), size = ?, subject = ?, sender_address = ?,"
            " sender_name = ?, erased = ? WHERE id = ?",
            (raw, len(raw), found.subject, "" if own else row["sender_address"], name,
             1 if own else 0, archive_id))
        await _index(db, archive_id, found)
        anonymised_count += 1
    if ids:
        await db.execute("INSERT INTO archive_fts (archive_fts) VALUES ('optimize')")
    return {"archive_deleted": deleted, "archive_anonymised": anonymised_count}


async def posts_of(db: aiosqlite.Connection, address: str) -> list[dict[str, object]]:
    """Her archived posts, for the DSGVO export: number, list, date, subject, text."""
    async with db.execute(
        "SELECT a.list_address, a.number, a.posted_at, a.subject, a.sender_name, f.body"
        " FROM archive a JOIN archive_fts f ON f.rowid = a.id"
        " WHERE a.sender_address = ? ORDER BY a.id", (address,)) as cur:
        return [dict(r) for r in await cur.fetchall()]
