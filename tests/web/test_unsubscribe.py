"""The one-click unsubscribe endpoint (RFC 8058), over real HTTP against a running daemon.

Each test starts the daemon with ``[web]`` on a free loopback port and talks
to it with aiohttp's client, as a mail provider (one-click POST) or a
browser (GET the page, submit its form) would.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from email import message_from_bytes
from email.policy import default
from html.parser import HTMLParser
from pathlib import Path

import aiohttp
import pytest

from listserv.commands import tokens
from listserv.config import Config
from listserv.daemon import Daemon
from listserv.delivery import transform
from listserv.delivery.plan import unsubscribe_token
from listserv.membership import members
from listserv.outbox import queue as outbox
from listserv.web.server import list_page_url
from tests.conftest import LIST, FakeDns, mail, make_daemon, wait_for

BASE_URL = "https://listen.gelsenkirchen.de"
WEB = f'\n[web]\nhost = "127.0.0.1"\nport = 0\nbase_url = "{BASE_URL}"\n'
ANNA, BERND = "anna@schule1.example", "bernd@schule2.example"
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture
async def web_daemon(config_factory: Callable[..., Config], dns: FakeDns
                     ) -> AsyncIterator[Daemon]:
    d = make_daemon(config_factory(extra=WEB), dns)
    await d.start()
    assert d.web is not None
    # Members join right after start here; in service the fill-in runs at most every 2 s,
    # which can only miss a member who joined within those 2 s and has no link yet.
    d.web.backfill_interval = 0
    d.web.min_answer = 0   # the even answer time has its own test (tests/hostile)
    try:
        yield d
    finally:
        await d.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def base(d: Daemon) -> str:
    assert d.web is not None and d.web.address is not None
    host, port = d.web.address
    return f"http://{host}:{port}"


async def join(d: Daemon, *addresses: str) -> None:
    assert d.store is not None
    async with d.store.transaction() as db:
        for address in addresses:
            await members.add(db, list_address=LIST, address=address, now=d.clock(),
                              language="de", event="added", detail="test")


def token_of(d: Daemon, address: str) -> str:
    secret = (d.config.server.data_dir / "unsubscribe.key").read_bytes()
    return unsubscribe_token(secret, LIST, address)


async def state(d: Daemon) -> tuple[list[str], list[tuple[str, str, str]], list[str]]:
    """Members, consent log rows (address, event, detail), reply recipients queued."""
    assert d.store is not None
    rows = await d.store.fetchall("SELECT address FROM members ORDER BY address")
    log = await d.store.fetchall("SELECT address, event, detail FROM consent_log ORDER BY id")
    queued = await d.store.fetchall(
        "SELECT d.rcpt FROM deliveries d JOIN outgoing o ON o.id = d.outgoing_id"
        " WHERE o.kind = 'reply' ORDER BY d.id")
    return ([r[0] for r in rows], [(r[0], r[1], r[2]) for r in log], [r[0] for r in queued])


class Forms(HTMLParser):
    """The forms of a page: method, action and their inputs' names and values."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, object]] = []
        self.viewport = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "meta" and a.get("name") == "viewport":
            self.viewport = True
        elif tag == "form":
            self.forms.append({"method": a.get("method"), "action": a.get("action"),
                               "fields": {}})
        elif tag == "input" and self.forms:
            fields = self.forms[-1]["fields"]
            assert isinstance(fields, dict)
            fields[a.get("name")] = a.get("value")


async def test_one_click_post_unsubscribes_logs_consent_and_says_goodbye(
    web_daemon: Daemon, http: aiohttp.ClientSession,
) -> None:
    await join(web_daemon, ANNA, BERND)
    url = f"{base(web_daemon)}/u/{token_of(web_daemon, ANNA)}"
    async with http.post(url, data=ONE_CLICK) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/plain"
        assert ANNA in await resp.text()
    listed, log, queued = await state(web_daemon)
    assert listed == [BERND]
    assert log[-1][:2] == (ANNA, "unsubscribed") and "one-click" in log[-1][2]
    assert queued == [ANNA]  # the goodbye mail
    async with http.post(url, data=ONE_CLICK) as resp:  # revoked with the membership
        assert resp.status == 404
    assert await state(web_daemon) == (listed, log, queued)


async def test_a_wrong_token_is_404_and_changes_nothing(
    web_daemon: Daemon, http: aiohttp.ClientSession,
) -> None:
    await join(web_daemon, ANNA)
    before = await state(web_daemon)
    other_key = unsubscribe_token(b"another key", LIST, ANNA)
    for token in [other_key, "a" * 32, "not-a-token", token_of(web_daemon, ANNA)[:-1]]:
        for method in ("GET", "POST"):
            async with http.request(method, f"{base(web_daemon)}/u/{token}",
                                    data=ONE_CLICK) as resp:
                assert resp.status == 404, (method, token)
    assert await state(web_daemon) == before


async def test_get_never_unsubscribes_and_its_form_posts_back(
    web_daemon: Daemon, http: aiohttp.ClientSession,
) -> None:
    await join(web_daemon, ANNA)
    url = f"{base(web_daemon)}/u/{token_of(web_daemon, ANNA)}"
    for _ in range(3):  # link scanners and previews fetch again and again
        async with http.get(url) as resp:
            assert resp.status == 200
            page = await resp.text()
            assert resp.headers["X-Frame-Options"] == "DENY"
            assert resp.headers["Referrer-Policy"] == "no-referrer"
        async with http.head(url) as resp:
            assert resp.status == 200
    assert (await state(web_daemon))[0] == [ANNA]
    parser = Forms()
    parser.feed(page)
    assert parser.viewport and "<script" not in page
    assert ANNA in page and "Abmelden" in page and "Unsubscribe" in page
    (form,) = parser.forms
    assert form["method"] == "post" and form["action"] in (None, "")
    assert form["fields"] == ONE_CLICK
    # What a browser does with the button: POST the fields to the page's own URL.
    async with http.post(url, data=form["fields"], headers={"Accept": "text/html"}) as resp:
        assert resp.status == 200 and "Abgemeldet" in await resp.text()
    assert (await state(web_daemon))[0] == []


async def test_post_without_the_one_click_body_and_other_requests_change_nothing(
    web_daemon: Daemon, http: aiohttp.ClientSession,
) -> None:
    await join(web_daemon, ANNA)
    before = await state(web_daemon)
    url = f"{base(web_daemon)}/u/{token_of(web_daemon, ANNA)}"
    async with http.post(url, data={"List-Unsubscribe": "yes"}) as resp:
        assert resp.status == 400
    for method, path in [("PUT", url), ("DELETE", url), ("GET", f"{base(web_daemon)}/nothing-here"),
                         ("GET", f"{base(web_daemon)}/u/"), ("GET", f"{base(web_daemon)}/x")]:
        async with http.request(method, path) as resp:
            assert resp.status in (404, 405), (method, path)
    assert await state(web_daemon) == before


async def test_every_member_has_a_token_also_one_who_joined_after_start(
    web_daemon: Daemon, http: aiohttp.ClientSession,
) -> None:
    """No personalised copy was ever sent: the endpoint fills the hashes in itself."""
    assert web_daemon.store is not None
    await join(web_daemon, ANNA)
    async with http.get(f"{base(web_daemon)}/u/{token_of(web_daemon, ANNA)}") as resp:
        assert resp.status == 200
    row = await web_daemon.store.fetchone("SELECT unsubscribe_token FROM members")
    assert row is not None and row[0] == tokens.token_hash(token_of(web_daemon, ANNA))


async def test_leaving_another_way_revokes_the_token(
    web_daemon: Daemon, http: aiohttp.ClientSession,
) -> None:
    await join(web_daemon, ANNA)
    url = f"{base(web_daemon)}/u/{token_of(web_daemon, ANNA)}"
    async with http.get(url) as resp:
        assert resp.status == 200
    assert web_daemon.store is not None
    async with web_daemon.store.transaction() as db:
        await members.remove(db, list_address=LIST, address=ANNA, now=web_daemon.clock(),
                             event="unsubscribed", detail="confirmed by reply")
    async with http.post(url, data=ONE_CLICK) as resp:
        assert resp.status == 404


async def test_the_list_page_mails_a_confirmation_to_members_only(
    web_daemon: Daemon, http: aiohttp.ClientSession,
) -> None:
    """The link for copies shared by all members: asks the address, then mails it."""
    await join(web_daemon, ANNA)
    mlist = web_daemon.config.lists[0]
    url = base(web_daemon) + list_page_url("", mlist)
    assert list_page_url(BASE_URL, mlist) == f"{BASE_URL}/l/{mlist.list_id}"
    async with http.get(url) as resp:
        assert resp.status == 200
        parser = Forms()
        parser.feed(await resp.text())
    (form,) = parser.forms
    assert form["method"] == "post" and "address" in form["fields"]  # type: ignore[operator]
    answers = []
    for address in (ANNA.upper(), "fremd@example.org"):
        async with http.post(url, data={"address": address}) as resp:
            assert resp.status == 200
            answers.append((await resp.text()).replace(address.lower(), "X"))
    assert answers[0] == answers[1], "the page tells nothing about membership"
    assert web_daemon.web is not None
    await web_daemon.web.drain()   # the mail is queued after the answer
    listed, _, queued = await state(web_daemon)
    assert listed == [ANNA] and queued == [ANNA]
    assert web_daemon.store is not None
    row = await web_daemon.store.fetchone("SELECT action, address FROM tokens")
    assert row is not None and tuple(row) == ("unsubscribe", ANNA)
    async with http.post(url, data={"address": "kein at"}) as resp:
        assert resp.status == 400
    async with http.get(f"{base(web_daemon)}/l/other.example.org") as resp:
        assert resp.status == 404


async def test_a_personalised_copy_carries_a_working_one_click_url(
    tmp_path: Path, config_factory: Callable[..., Config], dns: FakeDns,
    http: aiohttp.ClientSession,
) -> None:
    config = config_factory(delivery={"transport": "maildir", "personalize": True}, extra=WEB)
    d = make_daemon(config, dns)
    await d.start()
    try:
        await join(d, ANNA, BERND)
        assert d.store is not None and d.sender is not None
        msg = message_from_bytes(mail(subject="Fachtag"), policy=default)
        raw = transform.list_copy(msg, config.lists[0], add_footer=False).as_bytes()  # type: ignore[arg-type]
        async with d.store.transaction() as db:
            await outbox.enqueue_post(db, now=d.clock(), list_address=LIST,
                                      mail_from=config.lists[0].bounces_address, raw=raw,
                                      message_id="<fachtag@example.org>", inbox_id=None,
                                      verp=True, personalize=True)
        d.sender.wake()
        new = config.server.data_dir / "outbox" / "new"
        await wait_for(lambda: len(list(new.iterdir())) >= 2, timeout=30)
        copies = {}
        for path in new.iterdir():  # Return-Path, Delivered-To, then the copy
            _, delivered_to, data = path.read_bytes().split(b"\n", 2)
            rcpt = delivered_to.removeprefix(b"Delivered-To: ").decode().strip()
            copies[rcpt] = message_from_bytes(data, policy=default)
        assert set(copies) == {ANNA, BERND}
        anna = copies[ANNA]
        assert anna["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        urls = re.findall(r"<(https://[^>]+)>", str(anna["List-Unsubscribe"]))
        assert urls == [f"{BASE_URL}/u/{token_of(d, ANNA)}"]
        assert "<mailto:" in str(anna["List-Unsubscribe"])
        # The reverse proxy maps BASE_URL to the daemon's loopback listener.
        async with http.post(urls[0].replace(BASE_URL, base(d)), data=ONE_CLICK) as resp:
            assert resp.status == 200
        assert (await state(d))[0] == [BERND]
    finally:
        await d.stop()
