"""Bounce scores: one point a day per hard bounce, disabled at the threshold, VERP first."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from listserv.bounces.score import record_failures
from listserv.clock import iso
from listserv.config import Config
from listserv.delivery.plan import verp_sender
from listserv.outbox import queue as outbox
from listserv.roles.bounce_mail import make_bounce_handler
from listserv.store import keys
from listserv.store.database import Store
from listserv.store.rows import NewInbound
from tests.conftest import LIST
from tests.delivery import test_sender as test_sender
from tests.delivery.test_sender import FakeClock, add_members

clock, store = test_sender.clock, test_sender.store

BOUNCES = LIST.replace("@", "-bounces@")


async def score(store: Store, address: str) -> tuple[float, str, str]:
    row = await store.fetchone(
        "SELECT bounce_score, status, disabled_reason FROM members WHERE address = ?",
        (address,))
    assert row is not None
    return row[0], row[1], row[2]


async def fail(store: Store, *addresses: str, threshold: int = 3):
    async with store.transaction() as db:
        return await record_failures(db, list_address=LIST, addresses=addresses,
                                     now=store.clock(), threshold=threshold)


async def test_one_point_per_day_and_disabled_at_the_threshold(
    store: Store, clock: FakeClock
) -> None:
    await add_members(store, ["anna@x.de", "bernd@y.de"])
    change = await fail(store, "anna@x.de")
    assert change.counted == [("anna@x.de", 1.0)]
    change = await fail(store, "anna@x.de")  # the same day: not again
    assert change.counted == [] and change.already_today == ["anna@x.de"]
    clock.advance(days=1)
    await fail(store, "anna@x.de")
    assert await score(store, "anna@x.de") == (2.0, "enabled", "")
    clock.advance(days=1)
    change = await fail(store, "ANNA@x.de", "nobody@z.de")
    assert change.disabled == ["anna@x.de"] and change.not_members == ["nobody@z.de"]
    assert await score(store, "anna@x.de") == (3.0, "disabled", "bounces")
    assert await score(store, "bernd@y.de") == (0.0, "enabled", "")


def dsn(recipient: str, status: str = "5.1.1") -> bytes:
    action = "failed" if status.startswith("5") else "delayed"
    return (
        "From: MAILER-DAEMON@mx.y.de\r\nTo: " + BOUNCES + "\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <bounce-" + status + "@mx.y.de>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.y.de\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: {action}\r\nStatus: {status}\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n"
        "--b--\r\n"
    ).encode()


async def sent_to(store: Store, *addresses: str) -> None:
    """A post delivered to ``addresses`` now: what makes their bounces count."""
    async with store.transaction() as db:
        outgoing_id, _ = await outbox.enqueue_post(
            db, now=store.clock(), list_address=LIST, mail_from=BOUNCES, raw=b"x",
            message_id="<p@x>", inbox_id=None, verp=True, personalize=False)
        await db.execute("UPDATE deliveries SET state = 'sent', updated_at = ?"
                         " WHERE outgoing_id = ?", (iso(store.clock()), outgoing_id))


async def inbox_item(store: Store, rcpt: str, raw: bytes):
    await store.add_inbound([NewInbound(
        received_at=store.clock(), peer="127.0.0.1:1", helo="mx.y.de", mail_from="",
        rcpt=rcpt, list_address=LIST, role="bounces", extension=rcpt.split("@")[0]
        .partition("+")[2], message_id="<b@mx.y.de>", raw=raw)])
    item = await store.claim_next()
    assert item is not None
    return item


@pytest.mark.parametrize("verp", [True, False])
async def test_a_bounce_raises_the_failed_members_score(
    verp: bool, store: Store, config_factory: Callable[..., Config], caplog
) -> None:
    await add_members(store, ["anna@x.de", "bernd@y.de"])
    config = config_factory()
    handler = make_bounce_handler(config, store, store.clock)
    await sent_to(store)
    # With VERP the envelope names the member, even when the report names another address.
    key = keys.key(config.server.data_dir, keys.VERP_KEY)
    rcpt = verp_sender(key, BOUNCES, LIST, "bernd@y.de") if verp else BOUNCES
    item = await inbox_item(store, rcpt, dsn("bernd.alias@y.de" if verp else "bernd@y.de"))
    with caplog.at_level("INFO", logger="listserv"):
        outcome = await handler(item)
    assert outcome == "counted 1"
    assert await score(store, "bernd@y.de") == (1.0, "enabled", "")
    assert await score(store, "anna@x.de") == (0.0, "enabled", "")
    row = await store.fetchone("SELECT state, outcome FROM inbox WHERE id = ?", (item.id,))
    assert (row[0], row[1]) == ("done", "counted 1")
    (line,) = [r.getMessage() for r in caplog.records if "event=bounced" in r.getMessage()]
    assert "member=bernd@y.de" in line and "score=1.0" in line
    assert "could not be delivered" not in caplog.text  # never the body


async def test_delay_warnings_and_auto_replies_count_nothing(
    store: Store, config_factory: Callable[..., Config], clock: FakeClock
) -> None:
    await add_members(store, ["anna@x.de"])
    handler = make_bounce_handler(config_factory(), store, store.clock)
    warning = await inbox_item(store, BOUNCES, dsn("anna@x.de", "4.2.2"))
    assert await handler(warning) == "warning"
    auto = (b"From: anna@x.de\r\nTo: " + BOUNCES.encode() + b"\r\nSubject: Abwesenheitsnotiz"
            b"\r\nAuto-Submitted: auto-replied\r\n\r\nIch bin bis Montag nicht im Buero.\r\n")
    clock.advance(seconds=1)
    item = await inbox_item(store, BOUNCES, auto)
    assert await handler(item) == "not a bounce"
    assert await score(store, "anna@x.de") == (0.0, "enabled", "")


async def test_threshold_comes_from_the_list(
    store: Store, config_factory: Callable[..., Config], clock: FakeClock
) -> None:
    config = config_factory(lists=[{"address": LIST, "display_name": "SAS",
                                    "moderators": ["koordination@gelsenkirchen.de"],
                                    "bounce_threshold": 2}])
    await add_members(store, ["anna@x.de"])
    handler = make_bounce_handler(config, store, store.clock)
    await sent_to(store)
    for day in range(2):
        clock.advance(days=day, seconds=1)
        assert (await handler(await inbox_item(store, BOUNCES, dsn("anna@x.de")))).startswith(
            "counted 1")
    assert await score(store, "anna@x.de") == (2.0, "disabled", "bounces")
