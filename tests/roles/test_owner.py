"""A question to L-owner@D: forwarded to the coordinator, her reply reaches the asker."""

from __future__ import annotations

from datetime import UTC, datetime

import aiosmtplib
import pytest

from listserv.config import ListConfig
from listserv.daemon import Daemon
from listserv.mail.message import parse
from listserv.moderation.notices import owner_forward
from tests.conftest import LIST, MODERATOR, mail
from tests.mailflow import Flow, reply_to, text_of

OWNER = LIST.replace("@", "-owner@")
REQUEST = LIST.replace("@", "-request@")
ASKER = "eltern.beirat@example.org"
SAS = ListConfig(address=LIST, display_name="Netzwerk Soziale Arbeit an Schulen",
                 moderators=(MODERATOR,))


@pytest.fixture
def flow(daemon: Daemon) -> Flow:
    return Flow(daemon)


async def test_the_coordinators_reply_to_a_forward_goes_to_the_asker(flow: Flow) -> None:
    question = mail(sender=f"=?iso-8859-1?Q?J=FCrgen_M=FCller?= <{ASKER}>", to=OWNER,
                    subject="Frage zum Fachtag", body="Gibt es noch Plätze?\n")
    await flow.send(question, mail_from=ASKER, to=OWNER)
    forward = flow.last_to(MODERATOR)
    # Our mail, from the owner address, with our loop headers ...
    assert forward["From"].addresses[0].addr_spec == OWNER
    assert forward["X-Loop"] == LIST and forward["Auto-Submitted"] == "auto-generated"
    # ... whose Reply-To is the asker, with her name decoded and encoded again properly.
    (reply_address,) = forward["Reply-To"].addresses
    assert reply_address.addr_spec == ASKER
    assert reply_address.display_name == "Jürgen Müller"
    assert ASKER in text_of(forward) and "direkt an" in text_of(forward)
    # Her mail client answers the Reply-To: the asker, not one of our addresses. Our
    # server takes no mail for it (the relay would deliver it), so nothing comes
    # back as "Befehl nicht verstanden" from -request.
    answer = reply_to(forward, sender=MODERATOR, body="Ja, es gibt noch Plätze.")
    assert ASKER in answer.decode()
    host, port = flow.daemon.address  # type: ignore[misc]
    smtp = aiosmtplib.SMTP(hostname=host, port=port, start_tls=False, timeout=10)
    await smtp.connect()
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
        await smtp.sendmail(MODERATOR, [ASKER], answer)
    await smtp.quit()
    await flow.settled()
    assert not flow.query("SELECT id FROM inbox WHERE role = 'request'")
    assert len(flow.sent_to(MODERATOR)) == 1


async def test_a_forward_never_points_its_reply_to_at_our_own_addresses(flow: Flow) -> None:
    # A (forged) From of our own -request address is a loop: no forward at all, so
    # no Reply-To that would send the coordinator's answer back to us as a command.
    await flow.send(mail(sender=REQUEST, to=OWNER, subject="Seltsam"), mail_from="x@example.org",
                    to=OWNER)
    assert flow.sent_to(MODERATOR) == []
    # Without a usable asker the Reply-To is the owner address, never -request.
    raw = owner_forward(SAS, to=MODERATOR, original=parse(mail(to=OWNER)), raw=mail(to=OWNER),
                        now=datetime(2026, 11, 30, tzinfo=UTC), asker=None)
    assert parse(raw)["Reply-To"].addresses[0].addr_spec == OWNER
