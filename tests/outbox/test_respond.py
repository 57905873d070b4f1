"""The daily answer cap stops backscatter to strangers, never mail a person asked for."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from listserv.config import Config
from listserv.daemon import Daemon
from tests.conftest import LIST, MODERATOR, FakeClock, FakeDns, mail, make_daemon
from tests.mailflow import Flow, reply_to

REQUEST = LIST.replace("@", "-request@")
LEAVE = LIST.replace("@", "-leave@")
SABINE = "sabine@schule.example"


@pytest.fixture
async def flow(config_factory: Callable[..., Config], clock: FakeClock, dns: FakeDns
               ) -> AsyncIterator[Flow]:
    cfg = config_factory(lists=[{
        "address": LIST, "display_name": "Netzwerk Soziale Arbeit an Schulen",
        "moderators": [MODERATOR], "replies_per_address_per_day": 2}])
    daemon: Daemon = make_daemon(cfg, dns, clock=clock)
    await daemon.start()
    try:
        yield Flow(daemon)
    finally:
        await daemon.stop()


def subjects(flow: Flow, rcpt: str) -> list[str]:
    return [str(m["Subject"]) for m in flow.sent_to(rcpt)]


async def test_a_welcome_survives_the_limit_after_the_address_used_its_replies(
    flow: Flow, clock: FakeClock
) -> None:
    await flow.send(mail(sender=SABINE, to=REQUEST, subject="anmelden", body=""),
                    mail_from=SABINE, to=REQUEST)
    confirm = flow.last_to(SABINE)
    # She tries a few things on the same day: the cap (2) is used up, then silence.
    for _ in range(3):
        await flow.send(mail(sender=SABINE, to=REQUEST, subject="hilfe", body=""),
                        mail_from=SABINE, to=REQUEST)
    assert len(flow.sent_to(SABINE)) == 2
    # What follows her own confirmation is mail she asked for: never held back.
    await flow.send(reply_to(confirm, sender=SABINE), mail_from=SABINE,
                    to=str(confirm["Reply-To"]))
    notice = flow.last_to(MODERATOR)
    await flow.send(reply_to(notice, sender=MODERATOR, body="ok"), mail_from=MODERATOR,
                    to=str(notice["Reply-To"]))
    assert flow.members() == [SABINE]
    assert subjects(flow, SABINE)[-2:] == [
        "Ihre Anmeldung wartet auf Freigabe",
        "Willkommen im Netzwerk Soziale Arbeit an Schulen"]
    # Leaving the same day: her confirmation request is an ordinary (capped) answer,
    # so she writes on the next day; the goodbye after her reply comes whatever the count.
    clock.advance(days=1, minutes=1)
    await flow.send(mail(sender=SABINE, to=LEAVE, subject="", body=""), mail_from=SABINE,
                    to=LEAVE)
    leave = flow.last_to(SABINE)
    for _ in range(3):
        await flow.send(mail(sender=SABINE, to=REQUEST, subject="hilfe", body=""),
                        mail_from=SABINE, to=REQUEST)
    await flow.send(reply_to(leave, sender=SABINE), mail_from=SABINE, to=str(leave["Reply-To"]))
    assert flow.members() == []
    assert subjects(flow, SABINE)[-1] == "Sie sind aus dem Netzwerk Soziale Arbeit an Schulen" \
        " abgemeldet"


async def test_a_forged_request_flood_still_costs_a_stranger_two_mails(flow: Flow) -> None:
    victim = "opfer@example.org"
    for i in range(6):
        await flow.send(mail(sender=victim, to=REQUEST, subject="anmelden", body=f"#{i}"),
                        mail_from=victim, to=REQUEST)
    assert len(flow.sent_to(victim)) == 2
    assert flow.query("SELECT count(*) FROM reply_log WHERE address = ?", (victim,))[0][0] == 2
