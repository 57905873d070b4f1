"""Replies and requests as people write them, end to end over real SMTP (issue 11).

The reader (``commands/reader.py``) is proved case by case on the corpus
(``tests/commands/test_corpus.py``); here the whole daemon shows that its
readings act, or do not act, as they must.
"""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from listserv.clock import iso
from listserv.daemon import Daemon
from tests.conftest import LIST, MODERATOR, FakeClock, mail
from tests.mailflow import Flow, reply_to, text_of, token_of

ANNA = "anna.schmidt@schule-gelsenkirchen.de"
LENA = "lena.wolf@schule-gelsenkirchen.de"
KRAUS = "anna.kraus@schule-gelsenkirchen.de"
MEMBERS = [ANNA, "bernd@example.org"]


@pytest.fixture
async def flow(clocked_daemon: Daemon, clock: FakeClock) -> Flow:
    assert clocked_daemon.store is not None
    async with clocked_daemon.store.transaction() as db:
        await db.executemany(
            "INSERT INTO members (list_address, address, joined_at) VALUES (?, ?, ?)",
            [(LIST, m, iso(clock.now)) for m in MEMBERS])
    return Flow(clocked_daemon)


def bottom_reply(original: EmailMessage, *, sender: str, body: str) -> bytes:
    """Thunderbird style: attribution and quote first, the answer below."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = str(original["Reply-To"])
    msg["Subject"] = f"Re: {original['Subject']}"
    msg["Message-ID"] = f"<bottom-{abs(hash((sender, body)))}@client>"
    quoted = "\n".join("> " + line for line in text_of(original).splitlines())
    msg.set_content(f"Am 25.11.26 um 10:00 schrieb Netzwerk:\n{quoted}\n\n{body}\n")
    return msg.as_bytes()


def list_copies(flow: Flow, subject_part: str) -> list[EmailMessage]:
    return [m for member in MEMBERS for m in flow.sent_to(member)
            if m["List-Id"] and subject_part in str(m["Subject"])]


async def hold(flow: Flow, subject: str, body: str = "Liebe Kolleginnen,\n\nbis bald.\n",
               sender: str = ANNA) -> EmailMessage:
    await flow.send(mail(sender=sender, subject=subject, body=body), mail_from=sender, to=LIST)
    return flow.last_to(MODERATOR)


async def test_an_empty_moderator_reply_publishes_nothing_and_is_asked_again(flow: Flow) -> None:
    notice = await hold(flow, "Sommerfest")
    # Only her phone's signature above the quote: an accidental send.
    await flow.send(reply_to(notice, sender=MODERATOR, body="\nVon meinem iPhone gesendet"),
                    mail_from=MODERATOR, to=str(notice["Reply-To"]))
    assert list_copies(flow, "Sommerfest") == []
    assert flow.query("SELECT state FROM posts")[0]["state"] == "held"
    asked = flow.last_to(MODERATOR)
    assert asked["Subject"].startswith("Ihre Antwort enthielt keine Entscheidung: Sommerfest")
    text = text_of(asked)
    assert "»Sommerfest« von " + ANNA in text
    assert "ok " in text and "ablehnen Grund" in text and "verwerfen" in text
    # The same token still works, from the re-ask: now she writes "ok".
    assert token_of(asked) == token_of(notice)
    await flow.send(reply_to(asked, sender=MODERATOR, body="ok"), mail_from=MODERATOR,
                    to=str(asked["Reply-To"]))
    assert len(list_copies(flow, "Sommerfest")) == len(MEMBERS)


async def test_a_negation_is_never_its_positive(flow: Flow) -> None:
    notice = await hold(flow, "Werbung")
    for words in ("Bitte nicht veröffentlichen.", "nicht freigeben"):
        await flow.send(reply_to(notice, sender=MODERATOR, body=words), mail_from=MODERATOR,
                        to=str(notice["Reply-To"]))
    assert list_copies(flow, "Werbung") == []
    assert flow.query("SELECT state FROM posts")[0]["state"] == "held"
    asks = [m for m in flow.sent_to(MODERATOR) if "keine Entscheidung" in str(m["Subject"])]
    assert len(asks) == 2


async def test_a_bottom_posted_ok_publishes(flow: Flow) -> None:
    notice = await hold(flow, "Fachtag Kinderschutz")
    await flow.send(bottom_reply(notice, sender=MODERATOR, body="ok"), mail_from=MODERATOR,
                    to=str(notice["Reply-To"]))
    assert len(list_copies(flow, "Fachtag Kinderschutz")) == len(MEMBERS)
    assert flow.query("SELECT state FROM posts")[0]["state"] == "approved"


async def test_aufnehmen_alone_approves_a_membership_request(flow: Flow) -> None:
    request = LIST.replace("@", "-request@")
    await flow.send(mail(sender=LENA, to=request, subject="anmelden", body=""),
                    mail_from=LENA, to=request)
    confirm = flow.last_to(LENA)
    await flow.send(reply_to(confirm, sender=LENA, body="Danke schön!"), mail_from=LENA,
                    to=str(confirm["Reply-To"]))
    notice = flow.last_to(MODERATOR)
    assert LENA in notice["Subject"]
    # An empty answer first: nothing happens, and the re-ask names the person.
    await flow.send(reply_to(notice, sender=MODERATOR, body=""), mail_from=MODERATOR,
                    to=str(notice["Reply-To"]))
    assert LENA not in flow.members()
    asked = flow.last_to(MODERATOR)
    assert asked["Subject"].startswith(f"Ihre Antwort enthielt keine Entscheidung: {LENA}")
    await flow.send(reply_to(notice, sender=MODERATOR, body="Aufnehmen"), mail_from=MODERATOR,
                    to=str(notice["Reply-To"]))
    assert LENA in flow.members()
    assert flow.last_to(LENA)["Subject"].startswith("Willkommen")


async def test_a_free_text_join_to_the_list_address_is_a_join(flow: Flow) -> None:
    body = ("Hallo,\n\nich möchte gerne auf die Mailingliste.\n\nViele Grüße\nLena Wolf\n")
    await flow.send(mail(sender=f"Lena Wolf <{LENA}>", subject="Mailingliste", body=body),
                    mail_from=LENA, to=LIST)
    assert flow.query("SELECT COUNT(*) AS n FROM posts")[0]["n"] == 0
    assert flow.sent_to(MODERATOR) == []
    confirm = flow.last_to(LENA)
    assert "Bitte bestätigen" in confirm["Subject"]
    assert flow.query("SELECT outcome FROM inbox")[0]["outcome"] == "confirmation sent"
    # An announcement that merely mentions "Anmeldung" stays a post.
    await hold(flow, "Fachtag am 3.12. – Anmeldung bis 25.11.",
               body="Liebe alle,\n\nAnmeldung bitte bis zum 25.11. per Mail an mich.\n")
    assert flow.query("SELECT state FROM posts")[0]["state"] == "held"


async def test_aufnehmen_on_a_request_like_held_post_starts_the_join(flow: Flow) -> None:
    body = "Hallo, ich würde gerne die Infos des Netzwerks bekommen. Wie geht das?\n"
    notice = await hold(flow, "Frage", body=body, sender=LENA)
    assert "aufnehmen" in text_of(notice)
    await flow.send(reply_to(notice, sender=MODERATOR, body="aufnehmen"), mail_from=MODERATOR,
                    to=str(notice["Reply-To"]))
    assert list_copies(flow, "Frage") == []          # never published
    assert flow.query("SELECT state FROM posts")[0]["state"] == "discarded"
    confirm = flow.last_to(LENA)
    assert "Bitte bestätigen" in confirm["Subject"]
    await flow.send(reply_to(confirm, sender=LENA, body="👍"), mail_from=LENA,
                    to=str(confirm["Reply-To"]))
    assert LENA in flow.members()                    # no second approval needed


async def test_a_colleague_request_reaches_the_coordinator_as_a_ready_invitation(
        flow: Flow) -> None:
    body = (f"Liebe Frau Schneider,\n\nbitte nehmen Sie meine Kollegin {KRAUS} in den "
            "Verteiler auf.\n\nViele Grüße\nAnna\n")
    await flow.send(mail(sender=ANNA, subject="Neue Kollegin", body=body), mail_from=ANNA,
                    to=LIST)
    assert flow.query("SELECT COUNT(*) AS n FROM posts")[0]["n"] == 0
    assert flow.sent_to(KRAUS) == []                 # nothing before the coordinator agrees
    ready = flow.last_to(MODERATOR)
    assert ready["Subject"].startswith(f"Einladung vorbereitet: {KRAUS}")
    assert ANNA in text_of(ready)
    assert flow.last_to(ANNA)["Subject"].startswith("Ihre Bitte liegt der Koordination vor")
    await flow.send(reply_to(ready, sender=MODERATOR, body="ok"), mail_from=MODERATOR,
                    to=str(ready["Reply-To"]))
    invitation = flow.last_to(KRAUS)
    assert invitation["Subject"].startswith("Einladung ins Netzwerk")
    assert KRAUS not in flow.members()
    await flow.send(reply_to(invitation, sender=KRAUS, body="Vielen Dank!"), mail_from=KRAUS,
                    to=str(invitation["Reply-To"]))
    assert KRAUS in flow.members()


async def test_das_war_ich_nicht_declines_politely(flow: Flow) -> None:
    request = LIST.replace("@", "-request@")
    await flow.send(mail(sender=LENA, to=request, subject="anmelden", body=""),
                    mail_from=LENA, to=request)
    confirm = flow.last_to(LENA)
    await flow.send(reply_to(confirm, sender=LENA, body="Das war ich nicht."), mail_from=LENA,
                    to=str(confirm["Reply-To"]))
    assert LENA not in flow.members()
    assert flow.sent_to(MODERATOR) == []
    assert flow.last_to(LENA)["Subject"].startswith("Anfrage verworfen")


async def test_an_out_of_office_without_headers_does_nothing(flow: Flow) -> None:
    notice = await hold(flow, "Elternabend")
    before = len(flow.sent_to(MODERATOR))
    await flow.send(reply_to(notice, sender=MODERATOR, quote=False,
                             body="Vielen Dank für Ihre E-Mail. Ich bin bis zum 3.12. nicht im "
                                  "Büro und habe keinen Zugriff auf meine E-Mails."),
                    mail_from=MODERATOR, to=str(notice["Reply-To"]))
    assert flow.query("SELECT state FROM posts")[0]["state"] == "held"
    assert len(flow.sent_to(MODERATOR)) == before    # no answer to an absence note


async def test_a_colleague_request_to_request_is_not_the_askers_own_join(flow: Flow) -> None:
    request = LIST.replace("@", "-request@")
    body = f"Hallo,\nbitte nehmen Sie meine Kollegin {KRAUS} in den Verteiler auf.\n"
    await flow.send(mail(sender=ANNA, to=request, subject="Kollegin", body=body),
                    mail_from=ANNA, to=request)
    assert flow.last_to(MODERATOR)["Subject"].startswith(f"Einladung vorbereitet: {KRAUS}")
    assert not any("Bitte bestätigen" in str(m["Subject"]) for m in flow.sent_to(ANNA))
    # An empty answer from the coordinator sends no invitation; it names the colleague.
    ready = flow.last_to(MODERATOR)
    await flow.send(reply_to(ready, sender=MODERATOR, body=""), mail_from=MODERATOR,
                    to=str(ready["Reply-To"]))
    assert flow.sent_to(KRAUS) == []
    asked = flow.last_to(MODERATOR)
    assert asked["Subject"].startswith(f"Ihre Antwort enthielt keine Entscheidung: Einladung an "
                                       f"{KRAUS}")
