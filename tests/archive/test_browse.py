"""The archive's query API (what the web pages will call) on a real database file."""

from __future__ import annotations

import mailbox
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from listserv.archive import browse, records
from listserv.archive.extract import extract
from listserv.archive.mbox import DUPLICATE, NOT_FOR_LIST, UNREADABLE, import_mbox
from listserv.archive.query import Page
from listserv.config import Config
from listserv.store.database import Store
from tests.conftest import LIST

OTHER_LIST = "andere.liste@gelsenkirchen.de"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def post(n: int, *, subject: str = "", date: str = "", reply_to: str = "",
         to: str = LIST, sender: str = "Anna Schmidt <anna@schule.example>",
         body: str = "") -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject or f"Beitrag {n}"
    msg["Date"] = date or f"Wed, {min(n, 28):02d} Oct 2026 10:00:00 +0100"
    msg["Message-ID"] = f"<post-{n}@schule.example>"
    if reply_to:
        msg["In-Reply-To"] = reply_to
        msg["References"] = reply_to
    msg.set_content(body or f"Text des Beitrags {n}.")
    if n == 2:
        msg.add_attachment(b"%PDF-1.4 Flyer", maintype="application", subtype="pdf",
                           filename="Flyer Fachtag.pdf")
    return msg.as_bytes()


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """The archive on both backends (FTS5 in SQLite, tsvector and GIN in PostgreSQL)."""
    if request.param == "sqlite":
        s = await Store.open(tmp_path / "var" / "listserv.sqlite3")
    else:
        from listserv.store.postgres import PgStore

        s = await PgStore.connect(request.getfixturevalue("pg_url"), data_dir=tmp_path / "var")
    try:
        yield s
    finally:
        await s.close()


async def archive(store: Store, raw: bytes, list_address: str = LIST) -> int:
    async with store.transaction() as db:
        return await records.record(db, list_address=list_address, raw=raw, found=extract(raw),
                                    now=NOW, source="published")


async def test_numbers_months_threads_posts_and_attachments(store: Store) -> None:
    assert await archive(store, post(1, subject="Fachtag Übergänge")) == 1
    assert await archive(store, post(2, subject="Re: Fachtag Übergänge",
                                     reply_to="<post-1@schule.example>")) == 2
    assert await archive(store, post(3, date="Tue, 03 Nov 2026 10:00:00 +0100")) == 3
    assert await archive(store, post(4, reply_to="<post-2@schule.example>",
                                     date="Wed, 04 Nov 2026 10:00:00 +0100")) == 4
    assert await archive(store, post(5), OTHER_LIST) == 1   # numbers per list
    db = store.reader
    assert [p.number for p in await browse.latest(db, LIST, 20)] == [4, 3, 2, 1]
    assert await browse.months(db, LIST) == [("2026-11", 2), ("2026-10", 2)]
    assert [p.number for p in await browse.by_month(db, LIST, "2026-10")] == [1, 2]
    assert await browse.by_month(db, LIST, "../etc") == []
    assert [p.number for p in await browse.by_month(db, LIST, "2026-10", Page(2, 1))] == [2]
    # A thread by In-Reply-To/References, whichever post of it is asked for.
    assert [p.number for p in await browse.thread(db, LIST, 4)] == [1, 2, 4]
    assert [p.number for p in await browse.thread(db, LIST, 3)] == [3]
    one = await browse.post(db, LIST, 2)
    assert one is not None and one.thread_number == 1 and one.summary.attachments == 1
    assert one.summary.sender_address == "anna@schule.example"
    assert "Text des Beitrags 2." in one.text
    assert [(p.filename, p.content_type) for p in one.parts] == [
        ("Flyer Fachtag.pdf", "application/pdf")]
    got = await browse.attachment(db, LIST, 2, one.parts[0].position)
    assert got == ("Flyer Fachtag.pdf", "application/pdf", b"%PDF-1.4 Flyer")
    assert await browse.attachment(db, LIST, 2, 0) is None        # the body is no attachment
    assert await browse.attachment(db, OTHER_LIST, 2, 1) is None  # another list's number
    assert await browse.post(db, LIST, 99) is None
    # The stored copy is sealed: not in the file in the clear.
    raw = await browse.original(db, LIST, 2)
    assert raw is not None and b"JVBERi0xLjQgRmx5ZXI=" in raw     # the attachment, base64
    files = b"".join(p.read_bytes() for p in store.path.parent.glob("listserv.sqlite3*"))
    assert b"JVBERi0xLjQgRmx5ZXI=" not in files


async def test_search_ranks_pages_and_keeps_lists_apart(store: Store) -> None:
    for n in range(1, 26):
        body = "Fachtag " * (1 if n != 7 else 5) + f"Nummer {n}"
        await archive(store, post(n, body=body))
    await archive(store, post(1, subject="Fachtag im Subject"))   # subject counts most
    await archive(store, post(99, body="Fachtag"), OTHER_LIST)
    db = store.reader
    first = await browse.search(db, LIST, "fachtag", Page(1, 10))
    assert first is not None and first.total == 26 and len(first.hits) == 10
    assert first.hits[0].summary.subject == "Fachtag im Subject"
    assert first.hits[1].summary.number == 7                      # five times in the text
    assert "\x02Fachtag\x03" in first.hits[1].snippet
    third = await browse.search(db, LIST, "fachtag", Page(3, 10))
    assert third is not None and len(third.hits) == 6
    seen = {h.summary.number for h in first.hits + third.hits}
    assert len(seen) == 16                                        # no post on two pages
    assert await browse.search(db, LIST, "und die") is None
    nothing = await browse.search(db, LIST, "sommerfest")
    assert nothing is not None and nothing.total == 0


async def test_expiry_after_archive_days_and_numbers_never_reused(store: Store) -> None:
    await archive(store, post(1, date="Mon, 01 Jan 2024 10:00:00 +0100"))
    await archive(store, post(2))
    async with store.transaction() as db:
        assert await records.expire(db, LIST, 0, NOW) == 0        # 0 = forever
        assert await records.expire(db, LIST, 365, NOW) == 1
    assert [p.number for p in await browse.latest(store.reader, LIST)] == [2]
    assert await browse.search(store.reader, LIST, "Beitrag 1") is not None
    assert await archive(store, post(3)) == 3


def write_mbox(path: Path, mails: list[bytes]) -> None:
    box = mailbox.mbox(path)
    for raw in mails:
        box.add(raw)
    box.flush()
    box.close()


async def test_import_counts_imported_and_skipped_by_reason(store: Store, tmp_path: Path,
                                                            cfg: Config) -> None:
    mlist = cfg.lists[0]
    path = tmp_path / "Gesendet.mbox"
    write_mbox(path, [post(1), post(2), post(1),                       # a duplicate in the file
                      post(3, to="kollegin@schule.example"),           # not for the list
                      post(4, to=f"Netzwerk <{LIST.upper()}>"),
                      b"\x00\x01 not a mail"])
    seen: list[tuple[int, int]] = []
    imported, skipped = await import_mbox(store, mlist, path, NOW,
                                          progress=lambda d, t: seen.append((d, t)))
    assert imported == 3
    assert skipped == {DUPLICATE: 1, NOT_FOR_LIST: 2} or \
        skipped == {DUPLICATE: 1, NOT_FOR_LIST: 1, UNREADABLE: 1}
    assert seen[-1] == (6, 6)
    again, skipped_again = await import_mbox(store, mlist, path, NOW)
    assert again == 0 and skipped_again[DUPLICATE] == 4
    rows = await store.fetchall("SELECT number, source FROM archive ORDER BY number")
    assert [tuple(r) for r in rows] == [(1, "import"), (2, "import"), (3, "import")]


async def test_a_word_in_every_post_is_ranked_among_the_newest_and_counted_to_a_bound(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(1, 31):
        await archive(store, post(n, body="Fachtag" + " Fachtag" * (n == 3)))
    monkeypatch.setattr(browse, "RANKED", 10)
    monkeypatch.setattr(browse, "COUNTED", 20)
    found = await browse.search(store.reader, LIST, "fachtag", Page(1, 10))
    assert found is not None and found.total == 21 and found.more_than_counted
    # Only the ten newest are ranked: post 3 (the word twice) is not among them.
    assert sorted(h.summary.number for h in found.hits) == list(range(21, 31))
