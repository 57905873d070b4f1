"""Every decision the coordinator makes by mail gets one short acknowledgement."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from listserv.config import Config
from tests.conftest import LIST, MODERATOR, FakeClock, FakeDns, mail, make_daemon
from tests.mailflow import Flow, reply_to, text_of

REQUEST = LIST.replace("@", "-request@")
SABINE = "sabine.mueller@schule.example"


@pytest.fixture
async def flow(config_factory: Callable[..., Config], clock: FakeClock, dns: FakeDns
               ) -> AsyncIterator[Flow]:
    """A list that answers each address only once a day: acknowledgements must get through."""
    cfg = config_factory(lists=[{
        "address": LIST, "display_name": "Netzwerk Soziale Arbeit an Schulen",
        "moderators": [MODERATOR], "subject_prefix": "[SAS]",
        "replies_per_address_per_day": 1}])
    daemon = make_daemon(cfg, dns, clock=clock)
    await daemon.start()
    try:
        yield Flow(daemon)
    finally:
        await daemon.stop()


async def use_up_the_moderators_replies(flow: Flow) -> None:
    before = len(flow.sent_to(MODERATOR))
    for _ in range(2):
        await flow.send(mail(sender=MODERATOR, to=REQUEST, subject="hilfe", body=""),
                        mail_from=MODERATOR, to=REQUEST)
    assert len(flow.sent_to(MODERATOR)) == before + 1   # the second "hilfe" got no answer


async def decide(flow: Flow, notice: Any, word: str) -> Any:
    before = len(flow.sent_to(MODERATOR))
    await flow.send(reply_to(notice, sender=MODERATOR, body=word), mail_from=MODERATOR,
                    to=str(notice["Reply-To"]))
    mails = flow.sent_to(MODERATOR)
    assert len(mails) == before + 1, "exactly one acknowledgement"
    return mails[-1]


async def join(flow: Flow, who: str, name: str) -> Any:
    """Sabine asks and confirms; return the coordinator's approval request."""
    await flow.send(mail(sender=f"{name} <{who}>", to=REQUEST, subject="anmelden", body=""),
                    mail_from=who, to=REQUEST)
    confirm = flow.last_to(who)
    await flow.send(reply_to(confirm, sender=who), mail_from=who, to=str(confirm["Reply-To"]))
    return flow.last_to(MODERATOR)


async def test_member_decisions_are_acknowledged(flow: Flow) -> None:
    await use_up_the_moderators_replies(flow)
    approval = await join(flow, SABINE, "=?iso-8859-1?Q?Sabine_M=FCller?=")
    assert approval["Subject"] == f"Neues Mitglied freigeben: Sabine Müller ({SABINE})"
    ack = await decide(flow, approval, "ok")
    assert ack["Subject"] == f"Aufgenommen: Sabine Müller ({SABINE})"
    assert "Reply-To" not in ack            # answering it changes nothing
    assert flow.members() == [SABINE]
    # Refused and discarded requests, and a person without a name: no "(-)".
    other = "tom@schule.example"
    approval = await join(flow, other, "")
    assert "(-)" not in text_of(approval) and "()" not in text_of(approval)
    ack = await decide(flow, approval, "ablehnen Bitte über die Schulleitung anmelden.")
    assert ack["Subject"] == f"Nicht aufgenommen: {other}"
    third = "uta@schule.example"
    ack = await decide(flow, await join(flow, third, "Uta"), "verwerfen")
    assert ack["Subject"] == f"Verworfen: Anfrage von Uta ({third})"
    assert flow.members() == [SABINE]


async def test_post_decisions_are_acknowledged(flow: Flow) -> None:
    await decide(flow, await join(flow, SABINE, "Sabine"), "ok")
    await use_up_the_moderators_replies(flow)
    outsider = "verein@example.org"
    for subject in ("Sommerfest", "Werbung", "Doppelt"):
        await flow.send(mail(sender=outsider, subject=subject), mail_from=outsider, to=LIST)
    held = [m for m in flow.sent_to(MODERATOR) if str(m["Subject"]).startswith("Freigabe")]
    assert [str(m["Subject"]) for m in held] == [
        "Freigabe nötig: Sommerfest", "Freigabe nötig: Werbung", "Freigabe nötig: Doppelt"]
    ack = await decide(flow, held[0], "ok")
    assert ack["Subject"] == "Freigegeben: »Sommerfest« geht an 1 Mitglied"
    ack = await decide(flow, held[1], "ablehnen Keine Werbung im Verteiler.")
    assert ack["Subject"] == f"Abgelehnt: »Werbung« von {outsider}"
    ack = await decide(flow, held[2], "verwerfen")
    assert ack["Subject"] == f"Verworfen: »Doppelt« von {outsider}"
    assert [r[0] for r in flow.query("SELECT state FROM posts ORDER BY id")] == [
        "approved", "rejected", "discarded"]
    assert str(flow.last_to(SABINE)["Subject"]) == "[SAS] Sommerfest"


async def test_einladen_and_entfernen_are_acknowledged(flow: Flow) -> None:
    await use_up_the_moderators_replies(flow)
    await flow.send(mail(sender=MODERATOR, to=REQUEST, subject="",
                         body="einladen dora@schule.example Dora Schütz"),
                    mail_from=MODERATOR, to=REQUEST)
    confirm = flow.last_to(MODERATOR)
    assert confirm["Subject"] == "Einladung bestätigen: Dora Schütz (dora@schule.example)"
    ack = await decide(flow, confirm, "ok")
    assert ack["Subject"] == "Eingeladen: Dora Schütz (dora@schule.example)"
    invitation = flow.last_to("dora@schule.example")
    await flow.send(reply_to(invitation, sender="dora@schule.example"),
                    mail_from="dora@schule.example", to=str(invitation["Reply-To"]))
    assert flow.members() == ["dora@schule.example"]
    await flow.send(mail(sender=MODERATOR, to=REQUEST, subject="entfernen dora@schule.example",
                         body=""), mail_from=MODERATOR, to=REQUEST)
    ack = await decide(flow, flow.last_to(MODERATOR), "verwerfen")
    assert ack["Subject"] == "Abgebrochen: dora@schule.example bleibt Mitglied"
    await flow.send(mail(sender=MODERATOR, to=REQUEST, subject="entfernen dora@schule.example",
                         body=""), mail_from=MODERATOR, to=REQUEST)
    ack = await decide(flow, flow.last_to(MODERATOR), "ok")
    assert ack["Subject"] == "Entfernt: Dora Schütz (dora@schule.example)"
    assert flow.members() == []
    assert "ausgetragen" in str(flow.last_to("dora@schule.example")["Subject"])
