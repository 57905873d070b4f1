"""The members' archive over SMTP: published → found by German words → the same copy by mail."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from email.message import EmailMessage

import pytest

from listserv.cli.main import main as cli_main
from listserv.config import Config
from listserv.daemon import Daemon
from tests.conftest import LIST, MODERATOR, FakeDns, mail, make_daemon
from tests.mailflow import Flow, reply_to, text_of

REQUEST = LIST.replace("@", "-request@")
ANNA = "anna.schmidt@schule.example"
BOB = "bob@andere-schule.example"
STRANGER = "mallory@example.net"


def post_with_attachment(subject: str, body: str, attachment: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Anna Schmidt <{ANNA}>"
    msg["To"] = LIST
    msg["Subject"] = subject
    msg["Date"] = "Wed, 25 Nov 2026 10:00:00 +0100"
    msg["Message-ID"] = "<fachtag-2026@schule.example>"
    msg.set_content(body)
    msg.add_attachment(attachment.encode(), maintype="text", subtype="plain",
                       filename="Anmeldeformular.txt")
    msg.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf",
                       filename="Flyer Fachtag.pdf")
    return msg.as_bytes()


def cli(config: Config, *args: str) -> int:
    return cli_main([*args, "--config", str(config.path)])


def list_table(**extra: object) -> dict[str, object]:
    return {"address": LIST, "display_name": "Netzwerk Soziale Arbeit an Schulen",
            "moderators": [MODERATOR], "subject_prefix": "[SAS]", **extra}


@pytest.fixture
def cfg(config_factory: Callable[..., Config]) -> Config:
    # Members ask more than five times here; the cap itself is tested with the stranger.
    return config_factory(lists=[list_table(replies_per_address_per_day=40)])


@pytest.fixture
async def flow(daemon: Daemon) -> Flow:
    config = daemon.config
    assert await asyncio.to_thread(cli, config, "members", "add", ANNA, BOB) == 0
    return Flow(daemon)


async def publish(flow: Flow, raw: bytes, subject: str) -> None:
    await flow.send(raw, mail_from=ANNA, to=LIST)
    notice = next(m for m in reversed(flow.sent_to(MODERATOR))
                  if str(m["Subject"]) == f"Freigabe nötig: {subject}")
    await flow.send(reply_to(notice, sender=MODERATOR, body="ok"), mail_from=MODERATOR,
                    to=str(notice["Reply-To"]))


async def ask(flow: Flow, who: str, line: str) -> EmailMessage:
    before = len(flow.sent_to(who))
    await flow.send(mail(sender=who, to=REQUEST, subject="", body=line + "\n"),
                    mail_from=who, to=REQUEST)
    mails = flow.sent_to(who)
    assert len(mails) == before + 1, f"no answer to {line!r}"
    return mails[-1]


BODY = ("Liebe Kolleginnen und Kollegen,\n\nder Fachtag »Übergänge gestalten« findet in der"
        " Weißen Straße 12 statt. Bitte meldet euch mit dem Formular an.\n\nAnna\n")


async def test_a_published_post_is_found_by_umlaut_and_sz_and_hole_sends_the_same_copy(
        flow: Flow) -> None:
    await publish(flow, post_with_attachment("Einladung zum Fachtag", BODY,
                                             "Anmeldung zum Grünkohlessen"),
                  "Einladung zum Fachtag")
    copy_to_bob = next(m for m in flow.sent_to(BOB) if m["List-Id"])
    rows = flow.query("SELECT number, sender_address, sender_name, source FROM archive")
    assert [tuple(r) for r in rows] == [(1, ANNA, "Anna Schmidt", "published")]

    # Case and ß, in the body; umlauts in their own spelling; an attachment's text.
    for words in ("STRAßE", "straße", "übergänge", "ÜBERGÄNGE", "grünkohlessen", "Fachtag"):
        found = await ask(flow, BOB, f"suche {words}")
        text = text_of(found)
        assert found["Subject"] == f"Archiv: Suche nach {words.lower()}", words
        assert "Nr. 1 ·" in text and "Einladung zum Fachtag" in text, words
        assert "hat 1 Treffer" in text, words
    hit = text_of(await ask(flow, BOB, "suche strasse"))   # ss is not ß (issue 14: not needed)
    assert "hat 0 Treffer" in hit
    snippet = text_of(await ask(flow, BOB, "search weißen"))
    assert "*Weißen*" in snippet                           # the hit is marked in the snippet

    index = text_of(await ask(flow, BOB, "inhalt"))
    assert "Nr. 1 · " in index and "Einladung zum Fachtag (Anna Schmidt) [2]" in index

    got = await ask(flow, BOB, "hole 1")
    assert got["Subject"] == "Archiv Nr. 1: [SAS] Einladung zum Fachtag"
    assert got["Auto-Submitted"] == "auto-replied" and got["List-Id"] is None
    attached = [p for p in got.iter_attachments() if p.get_content_type() == "message/rfc822"]
    assert len(attached) == 1
    inner = attached[0].get_content()
    archived = flow.query("SELECT unseal(raw) FROM archive WHERE number = 1")[0][0]
    delivered = next(p.read_bytes() for p in flow.outbox.iterdir()
                     if str(got["Message-ID"]).encode() in p.read_bytes())
    # The archived copy is in the answer byte for byte (line ends aside).
    assert archived.replace(b"\r\n", b"\n").strip() in delivered.replace(b"\r\n", b"\n")
    for header in ("Subject", "Message-ID", "List-Id", "From"):
        assert str(inner[header]) == str(copy_to_bob[header]), header
    assert text_of(inner).replace("\r\n", "\n") == text_of(copy_to_bob)
    names = [p.get_filename() for p in inner.iter_attachments()]
    assert names == ["Anmeldeformular.txt", "Flyer Fachtag.pdf"]
    assert [p.get_filename() for p in copy_to_bob.iter_attachments()] == names

    missing = await ask(flow, BOB, "hole 99")
    assert missing["Subject"] == "Beitrag nicht gefunden"


async def test_a_non_member_gets_only_the_members_only_answer(flow: Flow) -> None:
    """The stranger's cap is the list's; here 40, so all six are answered, none with content."""
    await publish(flow, post_with_attachment("Einladung zum Fachtag", BODY, "Grünkohl"),
                  "Einladung zum Fachtag")
    for line in ("inhalt", "hole 1", "suche Fachtag", "search Straße", "get 1", "index"):
        answer = await ask(flow, STRANGER, line)
        assert answer["Subject"] == "Nur für Mitglieder", line
        assert "Fachtag" not in answer.as_string() and not list(answer.iter_attachments())
    assert flow.query("SELECT count(*) FROM reply_log WHERE address = ?",
                      (STRANGER,))[0][0] == 6   # capped answers: they count


async def test_fts_syntax_from_a_member_is_only_words(flow: Flow) -> None:
    await publish(flow, post_with_attachment("Einladung zum Fachtag", BODY, "x"),
                  "Einladung zum Fachtag")
    for line in ('suche fachtag OR NOT "straße', "suche subject:fachtag*", "suche NEAR(a b)"):
        answer = text_of(await ask(flow, BOB, line))
        assert "Treffer" in answer   # answered as words, never an FTS error
    empty = await ask(flow, BOB, "suche und der die")
    assert empty["Subject"] == "Archiv: wonach suchen?"


async def test_archive_off_keeps_nothing(config_factory: Callable[..., Config],
                                         dns: FakeDns) -> None:
    config = config_factory(lists=[list_table(archive="off")])
    daemon = make_daemon(config, dns)
    await daemon.start()
    try:
        assert await asyncio.to_thread(cli, config, "members", "add", ANNA, BOB) == 0
        flow = Flow(daemon)
        await publish(flow, post_with_attachment("Einladung zum Fachtag", BODY, "x"),
                      "Einladung zum Fachtag")
        assert any(m["List-Id"] for m in flow.sent_to(BOB))   # published as usual
        assert flow.query("SELECT count(*) FROM archive")[0][0] == 0
        assert (await ask(flow, BOB, "inhalt"))["Subject"] == "Kein Archiv"
    finally:
        await daemon.stop()

