"""The archive's pages over real HTTP against a running daemon: members only, text only.

Posts are archived as publishing archives them (``archive.records.record``
on the daemon's own database); what is checked is what a browser gets:
who may look, the escaping of a hostile subject and its highlighted search
hit, the attachment's download headers, and that after ``members forget``
the erased poster's address and name are on no archive page.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from email.message import EmailMessage
from urllib.parse import quote

import aiohttp
import pytest
from yarl import URL

from listserv.archive import records
from listserv.archive.extract import extract
from listserv.config import Config
from listserv.daemon import Daemon
from listserv.membership import erasure
from listserv.web import sessions
from listserv.web.reading import content_disposition, safe_filename
from tests.conftest import LIST, MODERATOR, FakeDns, make_daemon
from tests.web.test_pages import add_member, base, jar, log_in, web_table

ANNA, BERND, MALLORY = "anna@schule1.example", "bernd@schule2.example", "mallory@example.net"
HOSTILE = '<script>alert("x")</script> Fachtag'


def a_post(n: int, subject: str, body: str, *, sender: str = f"Anna Schmidt <{ANNA}>",
           reply_to: str = "", attachment: tuple[str, bytes] | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = LIST
    msg["Subject"] = subject
    msg["Date"] = f"Wed, {n:02d} Nov 2026 10:00:00 +0100"
    msg["Message-ID"] = f"<p{n}@schule1.example>"
    if reply_to:
        msg["In-Reply-To"] = msg["References"] = reply_to
    msg.set_content(body)
    if attachment:
        msg.add_attachment(attachment[1], maintype="text", subtype="html",
                           filename=attachment[0])
    return msg.as_bytes()


@pytest.fixture
async def archived(config_factory: Callable[..., Config], dns: FakeDns
                   ) -> AsyncIterator[Daemon]:
    d = make_daemon(config_factory(extra=web_table()), dns)
    await d.start()
    assert d.store is not None
    posts = [
        a_post(1, "Fachtag Übergänge", "Der Fachtag ist in der Weißen Straße 12.\n",
               attachment=("Flyer »Fachtag« ä.html", b"<script>alert(1)</script><b>Flyer</b>")),
        a_post(2, "Re: Fachtag Übergänge", "Ich komme gern. Bernd\n",
               sender=f"Bernd Berg <{BERND}>", reply_to="<p1@schule1.example>"),
        a_post(3, HOSTILE, "Fachtag <img src=x onerror=alert(2)> im Text\n",
               sender=f"Bernd Berg <{BERND}>"),
    ]
    async with d.store.transaction() as db:
        for raw in posts:
            await records.record(db, list_address=LIST, raw=raw, found=extract(raw),
                                 now=d.clock(), source="published")
    await add_member(d, ANNA, "Anna Schmidt")
    await add_member(d, BERND, "Bernd Berg")
    try:
        yield d
    finally:
        await d.stop()


async def session_of(d: Daemon, http: aiohttp.ClientSession, address: str) -> None:
    """A session as a login link opens it (no link is mailed to a non-member)."""
    assert d.store is not None
    session_id, _ = await sessions.open_session(d.store, address, d.clock(), 60)
    http.cookie_jar.update_cookies({sessions.COOKIE: session_id}, URL(base(d)))


async def page(http: aiohttp.ClientSession, url: str, status: int = 200) -> str:
    async with http.get(url, allow_redirects=False) as resp:
        assert resp.status == status, (url, resp.status)
        return await resp.text()


async def test_only_members_and_moderators_read_the_archive(archived: Daemon) -> None:
    url = base(archived) + "/archive/"
    async with jar() as http:
        async with http.get(url, allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/login"
        for path in ("/archive/2026-11", "/archive/post/1", "/archive/thread/1",
                     "/archive/post/1/attachment/1", "/archive/search?q=Fachtag"):
            await page(http, base(archived) + path, 303)
    async with jar() as http:   # a session of an address that is not (or no longer) a member
        await session_of(archived, http, MALLORY)
        for path in ("/archive/", "/archive/post/1", "/archive/search?q=Fachtag",
                     "/archive/post/1/attachment/1"):
            text = await page(http, base(archived) + path, 403)
            assert ANNA not in text and "Fachtag" not in text
    async with jar() as http:
        await log_in(archived, http, MODERATOR)
        text = await page(http, url)
        assert "11/2026" in text and "(3 Beiträge)" in text
    async with jar() as http:
        await log_in(archived, http, ANNA)
        index = await page(http, url)
        assert "Fachtag Übergänge" in index and "Archiv" in index
        month = await page(http, base(archived) + "/archive/2026-11")
        assert month.count("/archive/post/") == 3 and "Bernd Berg" in month
        thread = await page(http, base(archived) + "/archive/thread/2")
        assert "/archive/post/1?" in thread and "/archive/post/2?" in thread
        assert "/archive/post/3?" not in thread
        post = await page(http, base(archived) + "/archive/post/1")
        assert f"&lt;{ANNA}&gt;" in post and "Weißen Straße 12" in post
        assert "Flyer »Fachtag« ä.html" in post
        english = await page(http, base(archived) + "/archive/post/1?lang=en")
        assert "Attachments" in english and "Whole thread" in english
        await page(http, base(archived) + "/archive/post/99", 404)
        await page(http, base(archived) + "/archive/2026-13", 404)
        # A member who leaves reads no more with the session she still has.
        assert archived.store is not None
        async with archived.store.transaction() as db:
            await db.execute("DELETE FROM members WHERE address = ?", (ANNA,))
        await page(http, url, 403)


async def test_an_attachment_is_only_ever_a_download_under_its_own_name(
        archived: Daemon) -> None:
    async with jar() as http:
        await log_in(archived, http, ANNA)
        post = await page(http, base(archived) + "/archive/post/1")
        link = re.search(r'href="(/archive/post/1/attachment/(\d+)\?[^"]*)"', post)
        assert link
        async with http.get(base(archived) + link.group(1).replace("&amp;", "&")) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "application/octet-stream"
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            disposition = resp.headers["Content-Disposition"]
            assert disposition.startswith("attachment;")
            assert "filename*=UTF-8''" + quote("Flyer »Fachtag« ä.html", safe="") in disposition
            assert "sandbox" in resp.headers["Content-Security-Policy"]
            assert await resp.read() == b"<script>alert(1)</script><b>Flyer</b>"
        # Only a listed part: the text body (position 0) and unknown positions are not given.
        await page(http, base(archived) + "/archive/post/1/attachment/0", 404)
        await page(http, base(archived) + "/archive/post/1/attachment/7", 404)
        await page(http, base(archived) + "/archive/post/2/attachment/1", 404)


def test_file_names_lose_paths_controls_and_quotes() -> None:
    assert safe_filename("../../etc/passwd", "x") == "passwd"
    assert safe_filename('C:\\a\\b"c\r\n.pdf', "x") == "b'c.pdf"
    assert safe_filename("...", "anhang-1-1") == "anhang-1-1"
    header = content_disposition("Übersicht März.pdf", "x")
    assert header == ('attachment; filename="_bersicht M_rz.pdf";'
                      " filename*=UTF-8''%C3%9Cbersicht%20M%C3%A4rz.pdf")


async def test_search_ranks_highlights_escapes_and_pages(archived: Daemon) -> None:
    async with jar() as http:
        await log_in(archived, http, ANNA)
        found = await page(http, base(archived) + "/archive/search?q=" + quote("ÜBERGÄNGE straße"))
        assert "1 Treffer" in found and "/archive/post/1?" in found
        assert "<mark>Straße</mark>" in found or "<mark>Übergänge</mark>" in found
        hostile = await page(http, base(archived) + "/archive/search?q=Fachtag")
        assert "<script>" not in hostile and "&lt;script&gt;" in hostile
        assert "<img" not in hostile and "3 Treffer" in hostile
        assert hostile.count("<mark>") >= 3
        one = await page(http, base(archived) + "/archive/search?q=Fachtag&page=2")
        assert "Vorherige Seite" not in await page(http, base(archived)
                                                   + "/archive/search?q=Fachtag")
        assert 'start="11"' in one and "/archive/post/" not in one.split("</form>", 1)[1]
        post = await page(http, base(archived) + "/archive/post/3")
        assert "<script>" not in post and "<img" not in post
        assert "&lt;script&gt;" in post
        nothing = await page(http, base(archived) + "/archive/search?q=" + quote('und " OR *'))
        assert "Keine suchbaren Wörter" in nothing
        quoted = await page(http, base(archived) + "/archive/search?q=" + quote('"><b>x'))
        assert "<b>x" not in quoted and "&#34;&gt;&lt;b&gt;x" in quoted


async def test_after_forget_her_address_and_name_are_on_no_archive_page(
        archived: Daemon) -> None:
    assert archived.store is not None
    await erasure.erase(archived.store, ANNA, archived.clock())
    async with jar() as http:
        await log_in(archived, http, BERND)
        pages = [await page(http, base(archived) + path) for path in (
            "/archive/", "/archive/2026-11", "/archive/thread/1", "/archive/post/1",
            "/archive/post/2", "/archive/search?q=Fachtag", "/archive/search?q=Anna",
            "/archive/search?q=Schmidt")]
        for text in pages:
            text = re.sub(r'name="q"[^>]*>', "", text)   # the search box shows the words asked
            assert ANNA not in text and "Schmidt" not in text and "Anna" not in text
        assert "ehemaliges Mitglied" in pages[3]
        assert "Fachtag Übergänge" in pages[1]


async def test_month_and_search_pages_behind_a_mount_path(config_factory: Callable[..., Config],
                                                           dns: FakeDns) -> None:
    d = make_daemon(config_factory(extra=web_table("/listen")), dns)
    await d.start()
    try:
        assert d.store is not None
        async with d.store.transaction() as db:
            for n in range(1, 13):
                raw = a_post(n, f"Elternabend Nummer {n}", "Bitte Anmeldungen für Grüße.\n")
                await records.record(db, list_address=LIST, raw=raw, found=extract(raw),
                                     now=d.clock(), source="published")
        await add_member(d, ANNA, "Anna Schmidt")
        root = base(d, "/listen")
        async with jar() as http:
            async with http.get(root + "/archive/", allow_redirects=False) as resp:
                assert resp.status == 303 and resp.headers["Location"] == "/listen/login"
            await log_in(d, http, ANNA, "/listen")
            index = await page(http, root + "/archive/")
            assert 'href="/listen/archive/2026-11?' in index and "(12 Beiträge)" in index
            first = await page(http, root + "/archive/search?q=" + quote("GRÜßE Anmeldungen"))
            assert "12 Treffer" in first and first.count('href="/listen/archive/post/') == 10
            assert "q=GR%C3%9C%C3%9FE%20Anmeldungen&amp;page=2" in first
            assert "Vorherige Seite" not in first
            second = await page(http, root + "/archive/search?q=" + quote("GRÜßE Anmeldungen")
                                + "&page=2")
            assert second.count('href="/listen/archive/post/') == 2
            assert "Nächste Seite" not in second and 'start="11"' in second
            junk = await page(http, root + "/archive/search?q=Elternabend&page=x")
            assert 'start="1"' in junk
            month = await page(http, root + "/archive/2026-11?page=9999")
            assert "/listen/archive/post/" not in month and "Vorherige Seite" in month
    finally:
        await d.stop()
