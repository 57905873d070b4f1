"""Pausing and resuming delivery by mail (parental leave), end to end over SMTP."""

from __future__ import annotations

import pytest

from listserv.commands.parse import Context, Verb, parse_commands
from listserv.commands.requests import Ask, read_request
from listserv.daemon import Daemon
from tests.builders import arrived
from tests.conftest import LIST, MODERATOR, mail
from tests.mailflow import Flow, reply_to, text_of

REQUEST = LIST.replace("@", "-request@")
JOIN = LIST.replace("@", "-join@")
MARIA = "maria.kaya@schule.example"
OTHER = "jan@schule.example"


@pytest.mark.parametrize(("line", "verb"), [
    ("pausieren", Verb.NOMAIL), ("Pausieren bitte", Verb.NOMAIL), ("nomail", Verb.NOMAIL),
    ("pause", Verb.NOMAIL), ("fortsetzen", Verb.MAIL), ("mail", Verb.MAIL),
    ("resume", Verb.MAIL), ("Bitte fortsetzen.", Verb.MAIL),
])
def test_the_words(line: str, verb: Verb) -> None:
    assert [c.verb for c in parse_commands(arrived(line, to=REQUEST), Context.REQUEST)] == [verb]


def test_a_post_saying_pause_is_still_a_post() -> None:
    assert read_request(arrived("pausieren", subject="Pause"), "a@b.de").ask is Ask.NONE


@pytest.fixture
def flow(daemon: Daemon) -> Flow:
    return Flow(daemon)


async def become_member(flow: Flow, who: str) -> None:
    await flow.send(mail(sender=who, to=JOIN, subject="", body=""), mail_from=who, to=JOIN)
    confirm = flow.last_to(who)
    await flow.send(reply_to(confirm, sender=who), mail_from=who, to=str(confirm["Reply-To"]))
    approval = flow.last_to(MODERATOR)
    await flow.send(reply_to(approval, sender=MODERATOR, body="ok"), mail_from=MODERATOR,
                    to=str(approval["Reply-To"]))


async def publish(flow: Flow, subject: str) -> None:
    await flow.send(mail(sender=OTHER, subject=subject), mail_from=OTHER, to=LIST)
    notice = next(m for m in reversed(flow.sent_to(MODERATOR))
                  if str(m["Subject"]) == f"Freigabe nötig: {subject}")
    await flow.send(reply_to(notice, sender=MODERATOR, body="ok"), mail_from=MODERATOR,
                    to=str(notice["Reply-To"]))


def posts_to(flow: Flow, who: str) -> list[str]:
    return [str(m["Subject"]) for m in flow.sent_to(who) if m["List-Id"]]


async def test_pause_then_resume(flow: Flow) -> None:
    await become_member(flow, MARIA)
    await become_member(flow, OTHER)
    await publish(flow, "Vor der Elternzeit")
    assert posts_to(flow, MARIA) == ["[SAS] Vor der Elternzeit"]
    await flow.send(mail(sender=MARIA, to=REQUEST, subject="pausieren", body=""),
                    mail_from=MARIA, to=REQUEST)
    paused = flow.last_to(MARIA)
    assert paused["Subject"] == "Zustellung pausiert" and "fortsetzen" in text_of(paused)
    assert flow.query("SELECT status FROM members WHERE address = ?", (MARIA,))[0][0] == "nomail"
    await publish(flow, "Fachtag im Januar")
    assert posts_to(flow, MARIA) == ["[SAS] Vor der Elternzeit"]      # not delivered to her
    assert posts_to(flow, OTHER)[-1] == "[SAS] Fachtag im Januar"     # but to the others
    await flow.send(mail(sender=MARIA, to=REQUEST, subject="", body="fortsetzen\n-- \nMaria"),
                    mail_from=MARIA, to=REQUEST)
    assert flow.last_to(MARIA)["Subject"] == "Zustellung fortgesetzt"
    await publish(flow, "Nach der Elternzeit")
    assert posts_to(flow, MARIA) == ["[SAS] Vor der Elternzeit", "[SAS] Nach der Elternzeit"]
    assert [r[0] for r in flow.query("SELECT event FROM consent_log WHERE address = ?",
                                     (MARIA,))][-1] == "approved"   # membership untouched


async def test_an_english_member_and_a_non_member(flow: Flow) -> None:
    await become_member(flow, MARIA)
    await flow.send(mail(sender=MARIA, to=REQUEST, subject="nomail", body="please"),
                    mail_from=MARIA, to=REQUEST)
    assert flow.last_to(MARIA)["Subject"] == "Delivery paused"
    stranger = "fremd@example.org"
    await flow.send(mail(sender=stranger, to=REQUEST, subject="pausieren", body=""),
                    mail_from=stranger, to=REQUEST)
    answer = flow.last_to(stranger)
    assert answer["Subject"] == "Die Adresse ist nicht eingetragen"
    assert "anmelden" in text_of(answer)
    assert flow.members() == [MARIA]
