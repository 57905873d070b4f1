"""Class 7: raw UTF-8 headers (the daemon advertises SMTPUTF8), and faults in bounce reading.

A join from ``Jörg Müller <joerg@…>`` written as raw UTF-8, a request
from ``jörg@…`` (a UTF-8 local part), a header in raw Latin-1 from an old
client: each gets its proper answer and no inbox row ends ``failed``. A
fault in our own bounce reader is logged and counted in ``listserv
status``, never taken for "not a bounce".
"""

from __future__ import annotations

import aiosmtplib
import pytest

from listserv.bounces import analyse as bounce_analyse
from listserv.ops.health import gather
from tests.conftest import LIST, MODERATOR
from tests.hostile.conftest import smtp_to
from tests.mailflow import Flow, reply_to, text_of, token_of

L, D = LIST.split("@")
JOIN, REQUEST, BOUNCES = f"{L}-join@{D}", f"{L}-request@{D}", f"{L}-bounces@{D}"


def raw_mail(sender: str, to: str, subject: str, body: str = "", msgid: str = "<u@x>",
             encoding: str = "utf-8") -> bytes:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: {msgid}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n").encode(encoding)


async def send_utf8(flow: Flow, raw: bytes, *, mail_from: str, to: str) -> None:
    smtp = await smtp_to(flow.daemon)
    assert smtp.supports_extension("smtputf8")
    errors, _ = await smtp.sendmail(mail_from, [to], raw, mail_options=["SMTPUTF8"])
    await smtp.quit()
    assert errors == {}
    await flow.settled()


def no_failed_rows(flow: Flow) -> None:
    assert flow.query("SELECT id, outcome FROM inbox WHERE state = 'failed'") == []


async def test_a_join_from_a_raw_utf8_display_name(hostile: Flow) -> None:
    joerg = "joerg@schule.example"
    await send_utf8(hostile, raw_mail(f"Jörg Müller <{joerg}>", JOIN, "Anmeldung für Jörg",
                                      "Bitte nehmen Sie mich auf. Grüße"),
                    mail_from=joerg, to=JOIN)
    no_failed_rows(hostile)
    confirm = hostile.last_to(joerg)
    assert "Bitte bestätigen" in confirm["Subject"]
    await hostile.send(reply_to(confirm, sender=f"Jörg Müller <{joerg}>"), mail_from=joerg,
                       to=str(confirm["Reply-To"]))
    notice = hostile.last_to(MODERATOR)
    assert "Jörg Müller" in text_of(notice) or "Jörg Müller" in str(notice["Subject"])
    await hostile.send(reply_to(notice, sender=MODERATOR, body="ok"), mail_from=MODERATOR,
                       to=str(notice["Reply-To"]))
    member = hostile.query("SELECT address, display_name FROM members WHERE address = ?",
                           (joerg,))
    assert [tuple(m) for m in member] == [(joerg, "Jörg Müller")]
    no_failed_rows(hostile)


async def test_a_request_from_a_utf8_local_part(hostile: Flow) -> None:
    joerg = "jörg@schule.example"
    await send_utf8(hostile, raw_mail(joerg, REQUEST, "anmelden"), mail_from=joerg, to=REQUEST)
    no_failed_rows(hostile)
    confirm = hostile.last_to(joerg)
    assert "Bitte bestätigen" in confirm["Subject"]
    token = token_of(confirm)
    await send_utf8(hostile, raw_mail(joerg, str(confirm["Reply-To"]), f"AW: bestätigen {token}",
                                      "Ja, gerne.", msgid="<u2@x>"),
                    mail_from=joerg, to=LIST.replace("@", f"-confirm+{token}@"))
    no_failed_rows(hostile)
    assert "freigeben" in str(hostile.last_to(MODERATOR)["Subject"])


async def test_a_help_request_in_raw_utf8_is_answered(hostile: Flow) -> None:
    sender = "zoë@schule.example"
    await send_utf8(hostile, raw_mail(f"Zoë Ünal <{sender}>", REQUEST, "hilfe"),
                    mail_from=sender, to=REQUEST)
    assert hostile.last_to(sender)["Subject"].startswith("Hilfe")
    no_failed_rows(hostile)


async def test_raw_latin1_headers_from_an_old_client_are_answered(hostile: Flow) -> None:
    sender = "joerg.alt@schule.example"
    raw = raw_mail(f"J\u00f6rg M\u00fcller <{sender}>", REQUEST, "anmelden",
                   encoding="latin-1")
    assert b"J\xf6rg" in raw
    smtp = await smtp_to(hostile.daemon)
    await smtp.sendmail(sender, [REQUEST], raw)
    await smtp.quit()
    await hostile.settled()
    no_failed_rows(hostile)
    assert "Bitte bestätigen" in hostile.last_to(sender)["Subject"]


async def test_a_raw_utf8_post_is_held_and_published_with_its_headers(hostile: Flow) -> None:
    sender = "jörg@schule.example"
    await send_utf8(hostile, raw_mail(f"Jörg Müller <{sender}>", LIST, "Grüße zum Fachtag",
                                      "Liebe Kolleginnen, bis bald."),
                    mail_from=sender, to=LIST)
    notice = hostile.last_to(MODERATOR)
    await hostile.send(reply_to(notice, sender=MODERATOR, body="ok"), mail_from=MODERATOR,
                       to=str(notice["Reply-To"]))
    copy = hostile.last_to("mitglied1@schule1.example")
    assert copy["Subject"] == "[SAS] Grüße zum Fachtag"
    assert "Jörg Müller" in str(copy["From"]) or "Jörg Müller" in str(copy["Reply-To"])
    no_failed_rows(hostile)


async def test_a_fault_in_bounce_reading_is_logged_and_counted(
    hostile: Flow, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(raw: bytes, verp: str | None) -> None:
        raise KeyError("a reader bug")

    monkeypatch.setattr(bounce_analyse, "_analyse", broken)
    bounce = raw_mail("MAILER-DAEMON@relay.example", BOUNCES, "Undelivered Mail Returned",
                      "The mail could not be delivered.", msgid="<b@relay>")
    smtp: aiosmtplib.SMTP = await smtp_to(hostile.daemon)
    await smtp.sendmail("", [BOUNCES], bounce)
    await smtp.quit()
    await hostile.settled()
    (row,) = hostile.query("SELECT state, outcome FROM inbox WHERE role = 'bounces'")
    assert row["state"] == "done"
    assert row["outcome"] == "bounce analysis failed: KeyError: 'a reader bug'"
    assert "event=bounce_analysis_failed" in caplog.text
    report = await gather(hostile.daemon.store, hostile.daemon.config, hostile.daemon.clock())
    assert report.bounce_errors_recent == 1
    assert any("1 bounces could not be read" in reason for reason in report.reasons)
