"""The web face in a real browser: Debian's chromium, driven by selenium.

The daemon runs in a thread of its own (its own event loop), exactly as
served, with the Maildir outbox; the browser clicks through the pages as a
person does, and mail is answered over real SMTP. The walk: the join form
→ the confirmation mail → the reply → the coordinator's login link → the
member approved in the desk → a held post approved in the desk → every
member's copy in the outbox; a member pauses and gets no copy of the next
post. Refused, each: a forged POST without CSRF token, an expired link, a
member's session opening the desk, a used login link.

``LISTSERV_SCREENSHOTS=1`` also writes each page at phone (390 px) and
desktop (1280 px) width to ``docs/screenshots/`` (README, docs/web.md);
without it nothing in the tree is rewritten.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import smtplib
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Coroutine, Iterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from listserv import config as configuration
from listserv.daemon import Daemon
from listserv.membership import logins, members
from tests.conftest import LIST, MODERATOR, ROOT, FakeDns, mail, make_daemon, write_config
from tests.mailflow import Flow, reply_to, text_of

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="browser tests need Debian's chromium and chromium-driver (apt-get install chromium"
           " chromium-driver; .ci/run installs them as root)")

SCREENSHOTS = ROOT / "docs" / "screenshots"
ANNA, BERND, CARLA = "anna@schule1.example", "bernd@schule2.example", "carla@schule3.example"
LOGIN_URL = re.compile(r"(http://\S+/login/[a-z2-7]{32})")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Running:
    """The daemon in a thread with its own event loop, so the blocking browser can wait."""

    def __init__(self, directory: Path, port: int) -> None:
        extra = (f'\n[web]\nhost = "127.0.0.1"\nport = {port}\n'
                 f'base_url = "http://127.0.0.1:{port}"\n')
        self.config = configuration.load(write_config(directory, extra=extra))
        self.base = f"http://127.0.0.1:{port}"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.daemon: Daemon = self.call(self._start())
        self.flow = Flow(self.daemon)

    async def _start(self) -> Daemon:
        daemon = make_daemon(self.config, FakeDns())
        await daemon.start()
        return daemon

    def call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def stop(self) -> None:
        self.call(self.daemon.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    def send(self, raw: bytes, *, mail_from: str, to: str) -> None:
        assert self.daemon.address is not None
        host, port = self.daemon.address
        with smtplib.SMTP(host, port, timeout=10) as smtp:
            smtp.sendmail(mail_from, [to], raw)

    def add_member(self, address: str, name: str) -> None:
        async def add() -> None:
            assert self.daemon.store is not None
            async with self.daemon.store.transaction() as db:
                await members.add(db, list_address=LIST, address=address,
                                  now=self.daemon.clock(), display_name=name, event="added",
                                  detail="test set-up")
        self.call(add())


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    server = Running(tmp_path, free_port())
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or ""
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--disable-gpu", "--lang=de-DE", "--window-size=1280,900"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"intl.accept_languages": "de-DE,de"})
    try:
        driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER),
                                  options=options)
    except Exception as exc:  # a broken browser install: say so, do not fail the suite
        pytest.skip(f"chromium could not be started: {exc}")
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: Any, condition: Callable[[Any], Any], timeout: float = 15) -> Any:
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition)


def shot(driver: Any, name: str) -> None:
    """Both widths of the page shown now, when LISTSERV_SCREENSHOTS=1."""
    if os.environ.get("LISTSERV_SCREENSHOTS") != "1":
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for label, width in (("phone", 390), ("desktop", 1280)):
        driver.set_window_size(width, 900)
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(width, min(max(int(height) + 140, 600), 4000))
        driver.save_screenshot(str(SCREENSHOTS / f"{name}-{label}.png"))
    driver.set_window_size(1280, 900)


def mail_to(server: Running, rcpt: str, driver: Any, containing: str) -> EmailMessage:
    """The newest mail to ``rcpt`` whose text holds ``containing``, once it is there."""
    def found(_: Any) -> EmailMessage | None:
        hits = [m for m in server.flow.sent_to(rcpt) if containing in str(m["Subject"])
                or containing in text_of(m)]
        return hits[-1] if hits else None
    return wait(driver, found)


def login(server: Running, driver: Any, address: str) -> str:
    """Ask for a link on /login, open it from the mail, press the button; return the link."""
    before = len(server.flow.sent_to(address))
    driver.get(server.base + "/login")
    driver.find_element(By.ID, "email").send_keys(address)
    driver.find_element(By.CSS_SELECTOR, "main button[type=submit]").click()
    wait(driver, lambda d: "Link unterwegs" in d.page_source)
    wait(driver, lambda _: len(server.flow.sent_to(address)) > before)
    link = LOGIN_URL.search(text_of(server.flow.sent_to(address)[-1]))
    assert link, "no login link in the mail"
    driver.get(link.group(1))
    driver.find_element(By.CSS_SELECTOR, "main button[type=submit]").click()
    return link.group(1)


def post_form(url: str, fields: dict[str, str], cookie: str) -> int:
    """A POST made outside the page (a forged form): the status it gets."""
    request = urllib.request.Request(url, data=urllib.parse.urlencode(fields).encode(),
                                     headers={"Cookie": cookie}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_join_confirm_approve_publish_pause_in_a_real_browser(running: Running, browser: Any
                                                              ) -> None:
    server, driver = running, browser
    server.add_member(BERND, "Bernd Beispiel")
    server.add_member(CARLA, "Carla Muster")

    # 1. The join form, as a person fills it in on her phone.
    driver.get(server.base + "/")
    shot(driver, "join")
    driver.find_element(By.ID, "name").send_keys("Anna Schmidt")
    driver.find_element(By.ID, "email").send_keys("Anna@Schule1.example")
    driver.find_element(By.CSS_SELECTOR, "#role option[value=SchuSo]").click()
    driver.find_element(By.ID, "consent").click()
    driver.find_element(By.CSS_SELECTOR, "main button[type=submit]").click()
    wait(driver, lambda d: "Fast geschafft" in d.page_source)
    shot(driver, "join-sent")

    # 2. The confirmation mail, answered as any reply is.
    confirmation = mail_to(server, ANNA, driver, "")
    consent = server.flow.query("SELECT event, peer FROM consent_log WHERE address = ?", (ANNA,))
    assert [(r["event"], r["peer"]) for r in consent] == [("subscribe_requested",
                                                          "web 127.0.0.1")]
    server.send(reply_to(confirmation, sender=ANNA, body="Danke!"), mail_from=ANNA,
                to=str(confirmation["Reply-To"]))
    wait(driver, lambda _: server.flow.query(
        "SELECT 1 FROM tokens WHERE action = 'approve_member' AND address = ?", (ANNA,)))

    # 3. The coordinator logs in with a mailed link and approves Anna in the desk.
    driver.get(server.base + "/login")
    shot(driver, "login")
    used_link = login(server, driver, MODERATOR)
    wait(driver, lambda d: d.current_url.endswith("/desk/"))
    assert "Aufnahmeanträge (1)" in driver.page_source
    shot(driver, "desk")
    driver.find_element(By.XPATH, "//button[text()='Aufnehmen']").click()
    wait(driver, lambda d: "Aufgenommen." in d.page_source)
    row = server.flow.query("SELECT role, display_name FROM members WHERE address = ?", (ANNA,))
    assert [(r["role"], r["display_name"]) for r in row] == [("SchuSo", "Anna Schmidt")]
    assert ("approved", f"approved by moderator {MODERATOR}") in [
        (r["event"], r["detail"]) for r in server.flow.query(
            "SELECT event, detail FROM consent_log WHERE address = ?", (ANNA,))]
    mail_to(server, ANNA, driver, "Willkommen")

    # 4. A held post, read and approved in the desk: every member gets a copy.
    server.send(mail(sender=BERND, subject="Fachtag Kinderschutz"), mail_from=BERND, to=LIST)
    wait(driver, lambda _: server.flow.query("SELECT 1 FROM posts WHERE state = 'held'"))
    driver.get(server.base + "/desk/")
    driver.find_element(By.LINK_TEXT, "Fachtag Kinderschutz").click()
    wait(driver, lambda d: "Freigeben" in d.page_source)
    shot(driver, "post")
    driver.find_element(By.XPATH, "//button[text()='Freigeben']").click()
    wait(driver, lambda d: "Freigegeben:" in d.page_source)
    for rcpt in (ANNA, BERND, CARLA):
        mail_to(server, rcpt, driver, "Fachtag Kinderschutz")
    driver.get(server.base + "/desk/members")
    assert "Mitglieder (3)" in driver.page_source
    shot(driver, "members")
    driver.find_element(By.PARTIAL_LINK_TEXT, "@schule1.example").click()
    wait(driver, lambda d: "Einwilligungsprotokoll" in d.page_source)
    assert "approved by moderator" in driver.page_source
    shot(driver, "member")

    # 5. A used login link opens nothing.
    driver.delete_all_cookies()
    driver.get(used_link)
    driver.find_element(By.CSS_SELECTOR, "main button[type=submit]").click()
    wait(driver, lambda d: "Link ungültig" in d.page_source)
    shot(driver, "link-invalid")

    # 6. Anna pauses on her settings page and gets no copy of the next post.
    login(server, driver, ANNA)
    wait(driver, lambda d: d.current_url.endswith("/me/"))
    shot(driver, "me")
    driver.find_element(By.XPATH, "//button[text()='Zustellung pausieren']").click()
    wait(driver, lambda d: "pausiert" in d.page_source)
    assert server.flow.query("SELECT status FROM members WHERE address = ?",
                             (ANNA,))[0]["status"] == "nomail"
    server.send(mail(sender=BERND, subject="Zweiter Beitrag"), mail_from=BERND, to=LIST)
    notice = mail_to(server, MODERATOR, driver, "Zweiter Beitrag")
    server.send(reply_to(notice, sender=MODERATOR, body="ok"), mail_from=MODERATOR,
                to=str(notice["Reply-To"]))
    for rcpt in (BERND, CARLA):
        mail_to(server, rcpt, driver, "Zweiter Beitrag")
    assert not [m for m in server.flow.sent_to(ANNA) if "Zweiter Beitrag" in str(m["Subject"])]

    # 7. Her session does not open the desk; a forged POST without the token does nothing.
    driver.get(server.base + "/desk/")
    assert "moderators only" in driver.page_source
    cookie = driver.get_cookie("ls_session")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    forged = post_form(server.base + "/me/", {"action": "leave", "list": LIST.replace("@", ".")},
                       f"ls_session={cookie['value']}")
    assert forged == 403
    assert ANNA in server.flow.members()


def test_an_expired_login_link_is_refused(running: Running, browser: Any) -> None:
    server, driver = running, browser

    async def expired() -> str:
        assert server.daemon.store is not None
        async with server.daemon.store.transaction() as db:
            return await logins.issue(db, address=MODERATOR,
                                      now=server.daemon.clock() - timedelta(hours=2), minutes=30)

    token = server.call(expired())
    driver.get(f"{server.base}/login/{token}")
    driver.find_element(By.CSS_SELECTOR, "main button[type=submit]").click()
    wait(driver, lambda d: "Link ungültig" in d.page_source)
    assert driver.get_cookie("ls_session") is None
    driver.get(server.base + "/desk/")
    wait(driver, lambda d: d.current_url.endswith("/login"))


def test_a_member_finds_a_published_post_in_the_archive_and_downloads_its_attachment(
        running: Running, browser: Any, tmp_path: Path) -> None:
    """Published by mail → found by a German word with ß and umlaut → read → its file saved."""
    server, driver = running, browser
    server.add_member(ANNA, "Anna Schmidt")
    server.add_member(BERND, "Bernd Beispiel")
    post = EmailMessage()
    post["From"] = f"Bernd Beispiel <{BERND}>"
    post["To"] = LIST
    post["Subject"] = "Fachtag »Übergänge gestalten«"
    post["Message-ID"] = "<fachtag@schule2.example>"
    post.set_content("Liebe Kolleginnen und Kollegen,\n\nder Fachtag findet in der Weißen"
                     " Straße 12 statt. Anmeldung bis Freitag.\n\nViele Grüße\nBernd\n")
    post.add_attachment(b"%PDF-1.4 Einladung", maintype="application", subtype="pdf",
                        filename="Einladung Übergänge.pdf")
    server.send(post.as_bytes(), mail_from=BERND, to=LIST)
    notice = mail_to(server, MODERATOR, driver, "Übergänge gestalten")
    server.send(reply_to(notice, sender=MODERATOR, body="ok"), mail_from=MODERATOR,
                to=str(notice["Reply-To"]))
    wait(driver, lambda _: server.flow.query("SELECT 1 FROM archive"))
    for n in range(2, 5):   # more posts, so the index and the results are not a single line
        server.send(mail(sender=BERND, subject=f"Termine im Dezember, Teil {n}",
                         body="Die Straße ist gesperrt, bitte Übergänge beachten.\n"),
                    mail_from=BERND, to=LIST)
        notice = mail_to(server, MODERATOR, driver, f"Teil {n}")
        server.send(reply_to(notice, sender=MODERATOR, body="ok"), mail_from=MODERATOR,
                    to=str(notice["Reply-To"]))
    wait(driver, lambda _: len(server.flow.query("SELECT 1 FROM archive")) == 4)

    driver.execute_cdp_cmd("Page.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(tmp_path)})
    login(server, driver, ANNA)
    wait(driver, lambda d: d.current_url.endswith("/me/"))
    driver.find_element(By.LINK_TEXT, "Archiv").click()
    wait(driver, lambda d: "Nach Monat" in d.page_source)
    assert BERND in driver.page_source or "Bernd Beispiel" in driver.page_source
    shot(driver, "archive")
    driver.find_element(By.ID, "q").send_keys("weißen übergänge")
    driver.find_element(By.XPATH, "//button[text()='Suchen']").click()
    wait(driver, lambda d: "1 Treffer" in d.page_source)
    assert driver.find_elements(By.TAG_NAME, "mark")
    driver.find_element(By.ID, "q").clear()
    driver.find_element(By.ID, "q").send_keys("STRASSE")   # ß is not ss: nothing
    driver.find_element(By.XPATH, "//button[text()='Suchen']").click()
    wait(driver, lambda d: "0 Treffer" in d.page_source)
    driver.find_element(By.ID, "q").clear()
    driver.find_element(By.ID, "q").send_keys("Straße Übergänge")
    driver.find_element(By.XPATH, "//button[text()='Suchen']").click()
    wait(driver, lambda d: "4 Treffer" in d.page_source)
    shot(driver, "archive-search")
    driver.find_element(By.PARTIAL_LINK_TEXT, "Übergänge gestalten").click()
    wait(driver, lambda d: "Weißen Straße 12" in d.page_source)
    assert f"&lt;{BERND}&gt;" in driver.page_source
    shot(driver, "archive-post")
    driver.find_element(By.PARTIAL_LINK_TEXT, "Einladung Übergänge.pdf").click()
    saved = tmp_path / "Einladung Übergänge.pdf"
    wait(driver, lambda _: saved.exists() and saved.read_bytes() == b"%PDF-1.4 Einladung")
