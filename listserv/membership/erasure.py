"""DSGVO for one address: everything stored about it (Art. 15), and forgetting it (Art. 17).

``erase`` removes the address from every table *and every stored mail*,
whatever header or envelope it came under: her memberships, tokens,
consent and answer logs, the mail she sent (by envelope or by From,
Reply-To, Sender), mail that names her (a held post's notice with the post
attached, an approval request, somebody's post quoting her address),
answers sent to her and her rows of every delivery. Mail is searched as a
client reads it (``mail.mentions``: decoded headers and bodies, any case).
A list post that names her keeps its row (the others got it) but loses
its body. In the members' archive (``archive.records.forget``) her posts stay
as "ehemaliges Mitglied", rebuilt without her address and name, and any post
that names her is rebuilt the same way; on a list with ``archive_erasure =
"delete"`` her own posts go. The search index is rewritten and merged. One
line stays in the consent log: that an erasure happened, under a hash of the
address, so an audit can show it was honoured.

The database runs with ``secure_delete`` (freed space is zeroed), and
afterwards ``Store.scrub`` rebuilds the file and empties the WAL, so no
free page and no old WAL frame keeps her address. Backups taken before
stay until ``ops.backup`` prunes them (the newest ``backup.KEEP`` daily
copies are kept, so within that many days); the CLI says how many there are.

The mail is read outside the write transaction (it may be thousands of
mails) and only what arrived meanwhile is read again inside it, so the
daemon's intake waits milliseconds, not the length of the search.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import aiosqlite

from listserv.archive import records as archive
from listserv.clock import iso
from listserv.commands.tokens import TOKEN_LIKE
from listserv.mail.mentions import names
from listserv.store.database import Store

_INBOX = ("SELECT id, mail_from, message_id, outcome, unseal(raw) AS raw,"
          " unseal_text(extension) AS ext FROM inbox")
_OUTGOING = ("SELECT o.id, o.kind, unseal(o.raw) AS raw, EXISTS (SELECT 1 FROM deliveries d"
             " WHERE d.outgoing_id = o.id AND lower(d.rcpt) = :a) AS to_her FROM outgoing o")


def _inbox_hit(row: aiosqlite.Row, address: str) -> bool:
    verp = address.replace("@", "=")
    return ((row["mail_from"] or "").lower() == address
            or verp in (row["ext"] or "").lower()
            or any(address in (row[c] or "").lower() for c in ("message_id", "outcome"))
            or names(row["raw"], address))


async def _scan(db: aiosqlite.Connection, address: str, after: tuple[int, int]
                ) -> tuple[list[int], list[tuple[int, str]], tuple[int, int]]:
    """Inbox ids and (outgoing id, kind) naming ``address``, in rows after ``after``."""
    inbox, outgoing = [], []
    last_in, last_out = after
    async with db.execute(f"{_INBOX} WHERE id > ? ORDER BY id", (last_in,)) as cur:
        async for row in cur:
            last_in = row["id"]
            if _inbox_hit(row, address):
                inbox.append(row["id"])
    async with db.execute(f"{_OUTGOING} WHERE o.id > :after ORDER BY o.id",
                          {"a": address, "after": last_out}) as cur:
        async for row in cur:
            last_out = row["id"]
            if row["to_her"] or names(row["raw"], address):
                outgoing.append((row["id"], row["kind"]))
    return inbox, outgoing, (last_in, last_out)


async def _delete_ids(db: aiosqlite.Connection, sql: str, ids: list[int]) -> int:
    total = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        cur = await db.execute(sql.format(",".join("?" * len(chunk))), chunk)
        total += cur.rowcount
    return total


async def erase(store: Store, address: str, now: datetime, *,
                archive_delete: frozenset[str] = frozenset()) -> dict[str, int]:
    """Forget one address everywhere in the database; return what went, per table.

    ``archive_delete``: the lists whose ``archive_erasure`` is "delete" (her
    archived posts go there; elsewhere they stay without her).
    """
    address = address.strip().lower()
    inbox, outgoing, seen = await _scan(store.reader, address, (0, 0))
    archived, last_archived = await archive.naming(store.reader, address)
    counts: dict[str, int] = {}
    async with store.transaction() as db:
        more_in, more_out, _ = await _scan(db, address, seen)
        inbox += more_in
        outgoing += more_out
        archived += (await archive.naming(db, address, last_archived))[0]
        async with db.execute("SELECT display_name FROM members WHERE address = ?",
                              (address,)) as cur:
            people = [r[0] for r in await cur.fetchall()]
        counts.update(await archive.forget(db, address, archived, people=people,
                                           delete_lists=archive_delete))
        async with db.execute("SELECT inbox_id FROM posts WHERE lower(sender) = :a"
                              " OR instr(lower(subject), :a) > 0 OR lower(decided_by) = :a"
                              " OR instr(lower(decision_reason), :a) > 0", {"a": address}
                              ) as cur:
            inbox = sorted(set(inbox) | {r[0] for r in await cur.fetchall()})
        counts["posts"] = await _delete_ids(db, "DELETE FROM posts WHERE inbox_id IN ({})", inbox)
        counts["inbox"] = await _delete_ids(db, "DELETE FROM inbox WHERE id IN ({})", inbox)
        counts["outgoing"] = await _delete_ids(
            db, "DELETE FROM outgoing WHERE id IN ({})",
            [i for i, kind in outgoing if kind != "post"])
        counts["outgoing_bodies"] = await _delete_ids(
            db, "UPDATE outgoing SET raw = NULL WHERE id IN ({})",
            [i for i, kind in outgoing if kind == "post"])
        for table, sql in [
            ("deliveries", "DELETE FROM deliveries WHERE lower(rcpt) = :a"
                           " OR instr(lower(last_reply), :a) > 0"),
            ("members", "DELETE FROM members WHERE address = :a"),
            ("tokens", "DELETE FROM tokens WHERE lower(address) = :a OR lower(requester) = :a"
                       " OR lower(used_by) = :a OR instr(lower(data), :a) > 0"),
            ("consent_log", "DELETE FROM consent_log WHERE lower(address) = :a"
                            " OR instr(lower(detail), :a) > 0"),
            ("reply_log", "DELETE FROM reply_log WHERE lower(address) = :a"),
            ("notice_log", "DELETE FROM notice_log WHERE lower(rcpt) = :a"),
            ("login_links", "DELETE FROM login_links WHERE lower(address) = :a"),
            ("web_sessions", "DELETE FROM web_sessions WHERE lower(address) = :a"),
        ]:
            cursor = await db.execute(sql, {"a": address})
            counts[table] = cursor.rowcount
        digest = hashlib.sha256(address.encode()).hexdigest()[:16]
        await db.execute(
            "INSERT INTO consent_log (list_address, address, event, at, detail)"
            " VALUES ('', ?, 'erased', ?, 'all data of this address deleted on request')",
            (f"sha256:{digest}", iso(now)),
        )
    await store.scrub()
    return counts


async def export(store: Store, address: str) -> dict[str, object]:
    """Everything stored about one address (DSGVO Art. 15), her messages included."""
    address = address.strip().lower()
    memberships = await store.fetchall(
        "SELECT list_address, address_as_given AS address, display_name, role, employer_type,"
        " language, status, disabled_reason, bounce_score, last_bounce_at, joined_at"
        " FROM members WHERE address = ?", (address,))
    consent = await store.fetchall(
        "SELECT list_address, event, at, token_hash, message_id, peer, detail FROM consent_log"
        " WHERE lower(address) = ? ORDER BY id", (address,))
    token_rows = await store.fetchall(
        "SELECT token_hash, action, list_address, created_at, expires_at, used_at, outcome"
        " FROM tokens WHERE lower(address) = ? OR lower(requester) = ? ORDER BY created_at",
        (address, address))
    inbox, outgoing, _ = await _scan(store.reader, address, (0, 0))
    messages = []
    for inbox_id in inbox:
        row = await store.fetchone(
            "SELECT id, received_at, role, list_address, message_id, state, outcome,"
            " unseal(raw) AS raw FROM inbox WHERE id = ?", (inbox_id,))
        if row is not None:
            item = {k: row[k] for k in row.keys() if k != "raw"}  # noqa: SIM118
            text = None if row["raw"] is None else row["raw"].decode("utf-8", "replace")
            # Her mail as she wrote it, but no token (used or not) in the clear.
            item["text"] = None if text is None else TOKEN_LIKE.sub("[token]", text)
            messages.append(item)
    sent = await store.fetchall(
        "SELECT o.id, o.created_at, o.kind, o.list_address, o.message_id, d.state"
        " FROM outgoing o JOIN deliveries d ON d.outgoing_id = o.id"
        " WHERE lower(d.rcpt) = ? ORDER BY o.id", (address,))
    return {
        "address": address,
        "memberships": [dict(r) for r in memberships],
        "consent_log": [dict(r) for r in consent],
        "tokens": [dict(r) for r in token_rows],
        "messages_received": messages,
        "mail_sent_to_her": [dict(r) for r in sent],
        "stored_mail_naming_her": {"inbox": inbox, "outgoing": [i for i, _ in outgoing]},
        "archived_posts": await archive.posts_of(store.reader, address),
    }
