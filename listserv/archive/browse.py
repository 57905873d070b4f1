"""Reading the archive: the query API for the mail commands and the web pages.

Every function takes a connection and a list address and returns plain
dataclasses: the pages (members only; the web face decides who may look)
and ``index``/``hole``/``suche`` by mail call the same few functions.

- ``latest(db, L, n)``: the last n posts, newest first (``inhalt``);
- ``months(db, L)``: (month, count) pairs, newest first; ``by_month(db, L, "2026-11", page)``;
- ``thread(db, L, number)``: the posts of that post's thread, oldest first;
- ``post(db, L, number)``: one post with its text and attachments;
  ``original(db, L, number)``: the archived copy's bytes (``hole``);
- ``attachment(db, L, number, position)``: (filename, content type, bytes);
- ``search(db, L, words, page)``: ranked (bm25) hits with highlighted snippets
  and the total, or None when the words hold nothing to search. Bounded: the
  newest ``RANKED`` matches are ranked, ``COUNTED`` counted (see there).

Sender addresses are in ``Summary.sender_address`` for members to see; a
post whose sender was erased has ``erased`` set and sender "ehemaliges Mitglied".
"""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

from listserv.archive import extract
from listserv.archive.extract import Part
from listserv.archive.query import HIT_END, HIT_START, Page, fts_query, terms, valid_month

#: bm25 weights of subject, sender name and body: a word in the subject counts most.
WEIGHTS = (10.0, 2.0, 1.0)
SNIPPET_TOKENS = 16
#: A search ranks (bm25) the newest RANKED posts that contain its words, and counts up
#: to COUNTED of them: so no word, however common, makes a query read the whole index.
RANKED = 2000
COUNTED = 1_000


@dataclass(frozen=True)
class Summary:
    number: int
    subject: str
    sender_name: str
    sender_address: str
    posted_at: str        # ISO 8601 UTC
    erased: bool
    attachments: int


@dataclass(frozen=True)
class Post:
    summary: Summary
    text: str
    parts: tuple[Part, ...]
    thread_number: int     # the number of the thread's first archived post
    message_id: str


@dataclass(frozen=True)
class Hit:
    summary: Summary
    snippet: str           # hits between query.HIT_START and HIT_END: see query.segments


@dataclass(frozen=True)
class Hits:
    hits: list[Hit]
    total: int             # all hits, or COUNTED + 1 when there are more than COUNTED
    page: Page

    @property
    def more_than_counted(self) -> bool:
        return self.total > COUNTED


_SUMMARY = ("a.number, a.subject, a.sender_name, a.sender_address, a.posted_at, a.erased,"
            " (SELECT count(*) FROM archive_parts p WHERE p.archive_id = a.id) AS attachments")


def _summary(row: aiosqlite.Row) -> Summary:
    return Summary(number=row["number"], subject=row["subject"], sender_name=row["sender_name"],
                   sender_address=row["sender_address"], posted_at=row["posted_at"],
                   erased=bool(row["erased"]), attachments=row["attachments"])


async def _rows(db: aiosqlite.Connection, sql: str, params: tuple[object, ...]
                ) -> list[aiosqlite.Row]:
    async with db.execute(sql, params) as cur:
        return list(await cur.fetchall())


async def latest(db: aiosqlite.Connection, list_address: str, count: int = 20) -> list[Summary]:
    rows = await _rows(db, f"SELECT {_SUMMARY} FROM archive a WHERE a.list_address = ?"
                           " ORDER BY a.number DESC LIMIT ?", (list_address, min(count, 100)))
    return [_summary(r) for r in rows]


async def months(db: aiosqlite.Connection, list_address: str) -> list[tuple[str, int]]:
    rows = await _rows(db, "SELECT month, count(*) FROM archive WHERE list_address = ?"
                           " GROUP BY month ORDER BY month DESC", (list_address,))
    return [(r[0], r[1]) for r in rows]


async def by_month(db: aiosqlite.Connection, list_address: str, month: str,
                   page: Page | None = None) -> list[Summary]:
    page = page or Page()
    if valid_month(month) is None:
        return []
    rows = await _rows(db, f"SELECT {_SUMMARY} FROM archive a WHERE a.list_address = ?"
                           " AND a.month = ? ORDER BY a.posted_at, a.number LIMIT ? OFFSET ?",
                       (list_address, month, page.size, page.offset))
    return [_summary(r) for r in rows]


async def thread(db: aiosqlite.Connection, list_address: str, number: int) -> list[Summary]:
    rows = await _rows(
        db, f"SELECT {_SUMMARY} FROM archive a WHERE a.thread_id = (SELECT thread_id FROM"
            " archive WHERE list_address = ? AND number = ?) ORDER BY a.posted_at, a.number"
            " LIMIT 500", (list_address, number))
    return [_summary(r) for r in rows]


async def post(db: aiosqlite.Connection, list_address: str, number: int) -> Post | None:
    rows = await _rows(
        db, f"SELECT a.id, a.message_id, f.body, t.number AS thread_number, {_SUMMARY}"
            " FROM archive a JOIN archive_fts f ON f.rowid = a.id"
            " LEFT JOIN archive t ON t.id = a.thread_id"
            " WHERE a.list_address = ? AND a.number = ?", (list_address, number))
    if not rows:
        return None
    row = rows[0]
    parts = await _rows(db, "SELECT position, filename, content_type, size FROM archive_parts"
                            " WHERE archive_id = ? ORDER BY position", (row["id"],))
    return Post(summary=_summary(row), text=row["body"],
                parts=tuple(Part(p[0], p[1], p[2], p[3]) for p in parts),
                thread_number=row["thread_number"] or number, message_id=row["message_id"])


async def original(db: aiosqlite.Connection, list_address: str, number: int) -> bytes | None:
    """The archived copy as it went to the members (before personalisation)."""
    rows = await _rows(db, "SELECT unseal(raw) FROM archive WHERE list_address = ?"
                           " AND number = ?", (list_address, number))
    return rows[0][0] if rows and isinstance(rows[0][0], bytes) else None


async def attachment(db: aiosqlite.Connection, list_address: str, number: int,
                     position: int) -> tuple[str, str, bytes] | None:
    """One attachment by its position (``Post.parts``): only a listed part is given out."""
    rows = await _rows(db, "SELECT 1 FROM archive_parts p JOIN archive a ON a.id = p.archive_id"
                           " WHERE a.list_address = ? AND a.number = ? AND p.position = ?",
                       (list_address, number, position))
    raw = await original(db, list_address, number) if rows else None
    return None if raw is None else extract.attachment(raw, position)


async def search(db: aiosqlite.Connection, list_address: str, words: str,
                 page: Page | None = None) -> Hits | None:
    """Ranked hits for ``words`` in the list's archive; None when no word is searchable."""
    if getattr(db, "dialect", "sqlite") == "postgresql":
        return await _search_postgresql(db, list_address, words, page or Page(1, 10))
    match = fts_query(words)
    if match is None:
        return None
    page = page or Page(1, 10)
    # Bounded whatever the words: rank the newest RANKED matches only (a word in every
    # post would otherwise make bm25 score all of them), count up to COUNTED, and make
    # snippets for the page's rows only (a snippet tokenizes a post's text; SQLite would
    # make one for every hit before sorting). A join keeps the index outermost (CROSS
    # JOIN): driven by the archive table, SQLite would run the MATCH once per post.
    # With one list archived (the usual case) the list needs no join: the index alone.
    lists = [r[0] for r in await _rows(db, "SELECT list_address FROM archive_lists", ())]
    join, where, params = ("", "", ()) if lists == [list_address] else (
        " CROSS JOIN archive a ON a.id = f.rowid", " AND a.list_address = ?", (list_address,))
    ranked = await _rows(
        db, "SELECT rowid FROM (SELECT f.rowid AS rowid,"
            f" bm25(archive_fts, {', '.join(map(str, WEIGHTS))}) AS score"
            f" FROM archive_fts f{join} WHERE archive_fts MATCH ?{where}"
            " ORDER BY f.rowid DESC LIMIT ?) AS newest ORDER BY score, rowid DESC LIMIT ? OFFSET ?",
        (match, *params, RANKED, page.size, page.offset))
    order = {row[0]: i for i, row in enumerate(ranked)}
    rows = await _rows(
        db, f"SELECT f.rowid, snippet(archive_fts, -1, ?, ?, ' … ', {SNIPPET_TOKENS}) AS snip,"
            f" {_SUMMARY} FROM archive_fts f CROSS JOIN archive a ON a.id = f.rowid"
            f" WHERE archive_fts MATCH ? AND f.rowid IN ({', '.join('?' * len(order))})",
        (HIT_START, HIT_END, match, *order)) if order else []
    rows.sort(key=lambda r: order[r[0]])
    total_rows = await _rows(
        db, f"SELECT count(*) FROM (SELECT 1 FROM archive_fts f{join}"
            f" WHERE archive_fts MATCH ?{where} LIMIT ?) AS hits", (match, *params, COUNTED + 1))
    return Hits(hits=[Hit(_summary(r), r["snip"]) for r in rows],
                total=int(total_rows[0][0]) if total_rows else 0, page=page)


async def _search_postgresql(db: aiosqlite.Connection, list_address: str, words: str,
                             page: Page) -> Hits | None:
    """``search`` on PostgreSQL: the same terms, bounds and page, with tsvector and GIN.

    Each term of ``query.terms`` (letters, digits and spaces only) is one
    ``phraseto_tsquery`` (adjacent words, as an FTS5 phrase), all of them
    required. Ranking is ``ts_rank`` over the weighted subject (A), sender
    name (B) and body; the snippet is ``ts_headline`` with our hit markers.
    """
    found = terms(words)
    if not found:
        return None
    query = " && ".join("phraseto_tsquery('simple', ?)" for _ in found)
    options = (f"StartSel={HIT_START}, StopSel={HIT_END}, MaxWords={SNIPPET_TOKENS},"
               ' MinWords=6, MaxFragments=1, FragmentDelimiter=" … "')
    base = (" FROM archive_fts f JOIN archive a ON a.id = f.rowid"
            f" WHERE f.doc @@ ({query}) AND a.list_address = ?")
    ranked = await _rows(
        db, f"SELECT rowid FROM (SELECT f.rowid AS rowid, ts_rank(f.doc, ({query})) AS score"
            f"{base} ORDER BY f.rowid DESC LIMIT ?) AS newest"
            " ORDER BY score DESC, rowid DESC LIMIT ? OFFSET ?",
        (*found, *found, list_address, RANKED, page.size, page.offset))
    order = {row[0]: i for i, row in enumerate(ranked)}
    rows = await _rows(
        db, f"SELECT f.rowid, ts_headline('simple', f.subject || ' — ' || f.body, ({query}),"
            f" ?) AS snip, {_SUMMARY}{base} AND f.rowid = ANY(?)",
        (*found, options, *found, list_address, list(order))) if order else []
    rows.sort(key=lambda r: order[r[0]])
    total = await _rows(db, f"SELECT count(*) FROM (SELECT 1{base} LIMIT ?) AS hits",
                        (*found, list_address, COUNTED + 1))
    return Hits(hits=[Hit(_summary(r), r["snip"]) for r in rows],
                total=int(total[0][0]) if total else 0, page=page)
