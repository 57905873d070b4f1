"""The pages over real HTTP against a running daemon (aiohttp's client, no browser).

What the browser walk does not show: the join form's answer is the same for
a member, the consent log and token are those of a join mail, the desk
shows what was decided by mail and does not decide twice, the settings mail
command, the data download, a mount path behind a proxy.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest

from listserv.config import Config
from listserv.daemon import Daemon
from listserv.membership import erasure, members
from tests.conftest import LIST, MODERATOR, FakeClock, FakeDns, mail, make_daemon, wait_for
from tests.mailflow import Flow, reply_to, text_of

ANNA, BERND = "anna@schule1.example", "bernd@schule2.example"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
LINK = re.compile(r"https://listen\.example/(?:listen/)?login/([a-z2-7]{32})")


def web_table(mount: str = "") -> str:
    return (f'\n[web]\nhost = "127.0.0.1"\nport = 0\nbase_url = "https://listen.example'
            f'{mount}"\nmount = "{mount}"\n')


@pytest.fixture
async def web_daemon(config_factory: Callable[..., Config], dns: FakeDns
                     ) -> AsyncIterator[Daemon]:
    d = make_daemon(config_factory(extra=web_table()), dns)
    await d.start()
    try:
        yield d
    finally:
        await d.stop()


def jar() -> aiohttp.ClientSession:
    # The cookie jar of a browser: cookies of an IP host are kept (aiohttp's default drops them).
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


def base(d: Daemon, mount: str = "") -> str:
    assert d.web is not None and d.web.address is not None
    host, port = d.web.address
    return f"http://{host}:{port}{mount}"


async def form_token(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as resp:
        assert resp.status == 200
        found = CSRF.search(await resp.text())
    assert found
    return found.group(1)


async def add_member(d: Daemon, address: str, name: str = "") -> None:
    assert d.store is not None
    async with d.store.transaction() as db:
        await members.add(db, list_address=LIST, address=address, now=d.clock(),
                          display_name=name, event="added", detail="test")


async def log_in(d: Daemon, http: aiohttp.ClientSession, address: str, mount: str = "") -> None:
    flow = Flow(d)
    before = len(flow.sent_to(address))
    csrf = await form_token(http, base(d, mount) + "/login")
    async with http.post(base(d, mount) + "/login", data={"csrf": csrf, "email": address}) as r:
        assert r.status == 200
    await wait_for(lambda: len(flow.sent_to(address)) > before)
    token = LINK.search(text_of(flow.sent_to(address)[-1]))
    assert token
    url = f"{base(d, mount)}/login/{token.group(1)}"
    csrf = await form_token(http, url)
    async with http.post(url, data={"csrf": csrf}, allow_redirects=False) as resp:
        assert resp.status == 303


async def test_the_join_form_answers_alike_for_members_and_strangers(web_daemon: Daemon) -> None:
    await add_member(web_daemon, BERND)
    flow = Flow(web_daemon)
    pages = []
    async with jar() as http:
        for address in (ANNA, BERND):
            csrf = await form_token(http, base(web_daemon) + "/")
            async with http.post(base(web_daemon) + "/", data={
                    "csrf": csrf, "name": "X", "email": address, "consent": "yes"}) as resp:
                pages.append((resp.status, re.sub(r'value="[^"]+"', "", await resp.text())))
    assert pages[0] == pages[1]
    await wait_for(lambda: flow.sent_to(ANNA) and flow.sent_to(BERND))
    # Anna: the join mail's token and consent record, with the form's IP as the peer.
    assert [r["action"] for r in flow.query("SELECT action FROM tokens WHERE address = ?",
                                            (ANNA,))] == ["subscribe"]
    consent = flow.query("SELECT event, peer FROM consent_log WHERE address = ?", (ANNA,))
    assert [(r["event"], r["peer"]) for r in consent] == [("subscribe_requested",
                                                          "web 127.0.0.1")]
    assert "already" in str(flow.last_to(BERND)["Subject"]).lower() or \
        "bereits" in text_of(flow.last_to(BERND))


async def test_honeypot_rate_limit_and_csrf_refusals_change_nothing(web_daemon: Daemon) -> None:
    flow = Flow(web_daemon)
    async with jar() as http:
        csrf = await form_token(http, base(web_daemon) + "/")
        async with http.post(base(web_daemon) + "/", data={
                "csrf": csrf, "email": ANNA, "consent": "yes", "website": "x"}) as resp:
            assert resp.status == 200 and "Fast geschafft" in await resp.text()
        async with http.post(base(web_daemon) + "/", data={
                "email": ANNA, "consent": "yes"}) as resp:
            assert resp.status == 403
        async with http.post(base(web_daemon) + "/", data={
                "csrf": "forged" * 5, "email": ANNA, "consent": "yes"}) as resp:
            assert resp.status == 403
        statuses = []
        for _ in range(5):   # the same address: at most three mails an hour from the form
            async with http.post(base(web_daemon) + "/", data={
                    "csrf": csrf, "email": BERND, "consent": "yes"}) as resp:
                statuses.append(resp.status)
        assert statuses == [200] * 5
    await wait_for(lambda: len(flow.query("SELECT 1 FROM tokens WHERE address = ?",
                                          (BERND,))) == 3)
    assert not flow.query("SELECT 1 FROM tokens WHERE address = ?", (ANNA,))


async def test_output_is_escaped_and_headers_allow_only_the_site(web_daemon: Daemon) -> None:
    async with jar() as http:
        csrf = await form_token(http, base(web_daemon) + "/")
        async with http.post(base(web_daemon) + "/", data={
                "csrf": csrf, "name": "<script>alert(1)</script>", "email": "<b>x"}) as resp:
            page = await resp.text()
            assert resp.status == 400
            assert "<script>alert" not in page and "&lt;script&gt;" in page
            assert resp.headers["Content-Security-Policy"].startswith("default-src 'none'")
            assert "script-src" not in resp.headers["Content-Security-Policy"]
            assert resp.headers["X-Frame-Options"] == "DENY"
        async with http.get(base(web_daemon) + "/") as resp:
            cookie = resp.headers.get("Set-Cookie", "")
        # the first visit set it; a second visit keeps the same token
        assert cookie == "" or ("HttpOnly" in cookie and "SameSite=Strict" in cookie)


async def test_desk_shows_a_decision_made_by_mail_and_does_not_decide_twice(
        web_daemon: Daemon) -> None:
    await add_member(web_daemon, BERND)
    flow = Flow(web_daemon)
    await flow.send(mail(sender=BERND, subject="Sommerfest"), mail_from=BERND, to=LIST)
    post_id = flow.query("SELECT id FROM posts")[0]["id"]
    notice = flow.last_to(MODERATOR)
    async with jar() as http:
        await log_in(web_daemon, http, MODERATOR)
        url = f"{base(web_daemon)}/desk/post/{post_id}"
        csrf = await form_token(http, url)
        # Meanwhile she answers the notice by mail: "ok".
        await flow.send(reply_to(notice, sender=MODERATOR, body="ok"), mail_from=MODERATOR,
                        to=str(notice["Reply-To"]))
        copies = len(flow.sent_to(BERND))
        async with http.post(url, data={"csrf": csrf, "decision": "discard"}) as resp:
            page = await resp.text()
        assert "Schon entschieden" in page and "freigegeben" in page
    await flow.settled()
    assert flow.query("SELECT state, decided_by FROM posts")[0]["state"] == "approved"
    assert len(flow.sent_to(BERND)) == copies


async def test_desk_rejects_a_post_with_the_reason_and_acknowledges_as_by_mail(
        web_daemon: Daemon) -> None:
    await add_member(web_daemon, BERND)
    flow = Flow(web_daemon)
    await flow.send(mail(sender=BERND, subject="Werbung"), mail_from=BERND, to=LIST)
    post_id = flow.query("SELECT id FROM posts")[0]["id"]
    async with jar() as http:
        await log_in(web_daemon, http, MODERATOR)
        url = f"{base(web_daemon)}/desk/post/{post_id}"
        csrf = await form_token(http, url)
        async with http.post(url, data={"csrf": csrf, "decision": "reject",
                                        "reason": "Bitte keine Werbung"}) as resp:
            assert resp.status == 200
    await flow.settled()
    assert flow.query("SELECT state, decided_by, decision_reason FROM posts")[0][:] == (
        "rejected", MODERATOR, "Bitte keine Werbung")
    assert "Bitte keine Werbung" in text_of(flow.last_to(BERND))
    assert flow.query("SELECT used_at IS NOT NULL AS used FROM tokens"
                      " WHERE action = 'moderate_post'")[0]["used"]


async def test_desk_members_invite_remove_search_export_and_a_members_log(
        web_daemon: Daemon) -> None:
    await add_member(web_daemon, BERND, "Bernd Beispiel")
    flow = Flow(web_daemon)
    async with jar() as http:
        await log_in(web_daemon, http, MODERATOR)
        url = base(web_daemon) + "/desk/members"
        for page in ("1", "99"):           # a page beyond the matches shows the last one
            async with http.get(url, params={"q": "beisp", "page": page}) as resp:
                assert BERND in await resp.text()
        async with http.get(url, params={"q": "%"}) as resp:
            assert BERND not in await resp.text()      # a LIKE wildcard is taken literally
        csrf = await form_token(http, url)
        async with http.post(url, data={"csrf": csrf, "action": "invite", "email": ANNA,
                                        "name": "Anna"}) as resp:
            assert resp.status == 200
        async with http.post(url, data={"csrf": csrf, "action": "remove",
                                        "email": BERND}) as resp:
            assert resp.status == 200
        form = aiohttp.FormData()
        form.add_field("csrf", csrf)
        form.add_field("action", "import")
        form.add_field("file", b"E-Mail;Name\nc@schule3.example;Carla\nkaputt\n",
                       filename="liste.csv", content_type="text/csv")
        async with http.post(url, data=form) as resp:
            assert "1 Einladungen" in await resp.text()
        async with http.get(base(web_daemon) + "/desk/members.csv") as resp:
            assert resp.headers["Content-Disposition"].startswith("attachment")
            assert "E-Mail;Name" in await resp.text()
        async with http.get(base(web_daemon) + "/desk/member",
                            params={"address": BERND}) as resp:
            log = await resp.text()
        assert "removed by moderator" in log
    await flow.settled()
    assert flow.members() == []           # Bernd removed; Anna and Carla only invited
    assert {r["address"] for r in flow.query(
        "SELECT address FROM tokens WHERE action = 'invitation'")} == {ANNA, "c@schule3.example"}


async def test_a_member_session_gets_no_desk_and_her_data_download(web_daemon: Daemon) -> None:
    await add_member(web_daemon, ANNA, "Anna")
    async with jar() as http:
        await log_in(web_daemon, http, ANNA)
        for path in ("/desk/", "/desk/members", "/desk/members.csv",
                     f"/desk/member?address={ANNA}"):
            async with http.get(base(web_daemon) + path) as resp:
                assert resp.status == 403, path
        async with http.get(base(web_daemon) + "/me/data.json") as resp:
            data = json.loads(await resp.text())
        assert data["address"] == ANNA and data["memberships"][0]["display_name"] == "Anna"
        csrf = await form_token(http, base(web_daemon) + "/me/")
        async with http.post(base(web_daemon) + "/me/", data={
                "csrf": csrf, "action": "profile", "list": LIST.replace("@", "."),
                "name": "Anna Schmidt", "role": "MPT", "employer_type": "stadt"}) as resp:
            assert resp.status == 200
        async with http.post(base(web_daemon) + "/logout", data={"csrf": csrf},
                             allow_redirects=False) as resp:
            assert resp.status == 303
        async with http.get(base(web_daemon) + "/me/", allow_redirects=False) as resp:
            assert resp.status == 303                   # the session ended with the logout
    row = Flow(web_daemon).query("SELECT display_name, role, employer_type FROM members")[0]
    assert tuple(row) == ("Anna Schmidt", "MPT", "stadt")


async def test_the_settings_mail_command_mails_a_link_to_the_member_only(
        web_daemon: Daemon) -> None:
    await add_member(web_daemon, ANNA)
    flow = Flow(web_daemon)
    request = LIST.replace("@", "-request@")
    await flow.send(mail(sender=ANNA, to=request, subject="x", body="einstellungen\n"),
                    mail_from=ANNA, to=request)
    assert LINK.search(text_of(flow.last_to(ANNA)))
    await flow.send(mail(sender=BERND, to=request, subject="x", body="settings\n"),
                    mail_from=BERND, to=request)
    assert not LINK.search(text_of(flow.last_to(BERND)))
    assert len(flow.query("SELECT 1 FROM login_links")) == 1


async def test_pages_behind_a_mount_path(config_factory: Callable[..., Config],
                                         dns: FakeDns) -> None:
    d = make_daemon(config_factory(extra=web_table("/listen")), dns)
    await d.start()
    try:
        async with jar() as http:
            async with http.get(base(d, "/listen") + "/") as resp:
                page = await resp.text()
                assert resp.status == 200 and 'href="/listen/static/site.css"' in page
            async with http.get(base(d) + "/") as resp:
                assert resp.status == 404
            await add_member(d, ANNA)
            await log_in(d, http, ANNA, "/listen")
            async with http.get(base(d, "/listen") + "/me/") as resp:
                assert resp.status == 200 and ANNA in await resp.text()
            async with http.get(base(d, "/listen") + "/healthz") as resp:
                assert resp.status in (200, 503)
    finally:
        await d.stop()


async def test_the_embed_snippet_prefills_the_form_and_acts_on_nothing(
        web_daemon: Daemon) -> None:
    """The snippet on another site GETs the form with name and address filled in."""
    async with jar() as http, http.get(base(web_daemon) + "/", params={
            "name": 'Anna "<b>"', "email": ANNA}) as resp:
        page = await resp.text()
    assert f'value="{ANNA}"' in page and "&lt;b&gt;" in page and "<b>" not in page
    assert not Flow(web_daemon).query("SELECT 1 FROM tokens")


async def test_forgetting_an_address_ends_its_sessions_and_links(web_daemon: Daemon) -> None:
    await add_member(web_daemon, ANNA)
    assert web_daemon.store is not None
    async with jar() as http:
        await log_in(web_daemon, http, ANNA)
        counts = await erasure.erase(web_daemon.store, ANNA, web_daemon.clock())
        assert counts["web_sessions"] == 1 and counts["login_links"] == 1
        async with http.get(base(web_daemon) + "/me/", allow_redirects=False) as resp:
            assert resp.status == 303


async def test_every_page_renders_in_english_and_a_request_is_declined_with_its_reason(
        web_daemon: Daemon) -> None:
    """An English browser gets English pages; the decline goes through the mail's path."""
    await add_member(web_daemon, BERND, "Bernd")
    flow = Flow(web_daemon)
    join = LIST.replace("@", "-join@")
    await flow.send(mail(sender=ANNA, to=join, subject="join"), mail_from=ANNA, to=join)
    confirmation = flow.last_to(ANNA)
    await flow.send(reply_to(confirmation, sender=ANNA, body="yes"), mail_from=ANNA,
                    to=str(confirmation["Reply-To"]))
    await flow.send(mail(sender=BERND, subject="Summer party"), mail_from=BERND, to=LIST)
    post_id = flow.query("SELECT id FROM posts")[0]["id"]
    english = {"Accept-Language": "en-GB,en;q=0.9"}
    async with jar() as http:
        for path, words in [("/", "Join the list"), ("/login", "Link to my settings"),
                            ("/login/" + "a" * 32, "Log in now")]:
            async with http.get(base(web_daemon) + path, headers=english) as resp:
                assert resp.status == 200 and words in await resp.text(), path
        await log_in(web_daemon, http, MODERATOR)
        for path, words in [("/desk/", "Membership requests (1)"),
                            ("/archive/", "Search the archive"),
                            (f"/desk/post/{post_id}", "Reject with a reason"),
                            ("/desk/members", "Members (1)"),
                            (f"/desk/member?address={BERND}", "Consent log"),
                            ("/me/", "This address is on no list.")]:
            async with http.get(base(web_daemon) + path, headers=english) as resp:
                page = await resp.text()
                assert resp.status == 200 and words in page, path
                assert 'lang="en"' in page
        request_id = flow.query("SELECT rowid FROM tokens WHERE action = 'approve_member'"
                                " AND used_at IS NULL")[0][0]
        csrf = await form_token(http, base(web_daemon) + "/desk/")
        async with http.post(f"{base(web_daemon)}/desk/request/{request_id}", headers=english,
                             data={"csrf": csrf, "decision": "reject",
                                   "reason": "Only for school social workers"}) as resp:
            assert "Declined." in await resp.text()
    await flow.settled()
    assert ANNA not in flow.members()
    assert "Only for school social workers" in text_of(flow.last_to(ANNA))
    assert "refused" in [r["event"] for r in flow.query(
        "SELECT event FROM consent_log WHERE address = ?", (ANNA,))]


async def test_sessions_expire_and_cookies_are_secure_behind_a_tls_proxy(
        config_factory: Callable[..., Config], dns: FakeDns, clock: FakeClock) -> None:
    d = make_daemon(config_factory(extra=web_table()), dns, clock=clock)
    await d.start()
    try:
        await add_member(d, ANNA)
        async with jar() as http:
            async with http.get(base(d) + "/login",
                                headers={"X-Forwarded-Proto": "https"}) as resp:
                cookie = resp.headers["Set-Cookie"]
            assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
            await log_in(d, http, ANNA)
            async with http.get(base(d) + "/me/", allow_redirects=False) as resp:
                assert resp.status == 200
            clock.advance(minutes=61)
            async with http.get(base(d) + "/me/", allow_redirects=False) as resp:
                assert resp.status == 303 and resp.headers["Location"] == "/login"
    finally:
        await d.stop()


async def test_too_many_requests_from_one_address_are_refused(web_daemon: Daemon) -> None:
    async with jar() as http:
        csrf = await form_token(http, base(web_daemon) + "/login")
        statuses = []
        for n in range(21):
            async with http.post(base(web_daemon) + "/login",
                                 data={"csrf": csrf, "email": f"x{n}@y.example"}) as resp:
                statuses.append(resp.status)
    assert statuses[:20] == [200] * 20 and statuses[20] == 429


async def test_settings_by_mail_without_a_web_face_says_how_to_do_it_by_mail(
        daemon: Daemon) -> None:
    await add_member(daemon, ANNA)
    flow = Flow(daemon)
    request = LIST.replace("@", "-request@")
    await flow.send(mail(sender=ANNA, to=request, subject="x", body="einstellungen\n"),
                    mail_from=ANNA, to=request)
    answer = text_of(flow.last_to(ANNA))
    assert "pausieren" in answer and not LINK.search(answer)
