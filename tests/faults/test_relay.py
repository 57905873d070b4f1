"""The relay goes away and comes back: refused, then 421, then stalling in DATA, then healthy.

An in-process daemon on a ``FakeClock`` (the retry schedule is minutes to
hours: time is moved by hand, never waited for) delivers through a ``Sink``
relay whose behaviour the test switches. What must hold: every member gets
the post exactly once, the relay gets no attempt before a retry falls due,
and each retry comes when ``delivery.RETRY_SCHEDULE`` says.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable

import pytest

from listserv.clock import iso
from listserv.config import Config
from listserv.daemon import Daemon
from listserv.delivery.plan import RETRY_SCHEDULE
from listserv.delivery.smtp import SmtpTransport
from listserv.outbox import queue as outbox
from tests import sealed
from tests.conftest import LIST, FakeClock, FakeDns, make_daemon, wait_for
from tests.faults.helpers import Sink

MEMBERS = ["a@schule1.example", "b@schule1.example", "c@schule2.example", "d@schule3.example"]
BOUNCES = LIST.replace("@", "-bounces@")


@pytest.fixture
async def relay_daemon(
    config_factory: Callable[..., Config], clock: FakeClock, dns: FakeDns
) -> AsyncIterator[tuple[Daemon, Sink]]:
    sink = Sink()
    config = config_factory(delivery={
        "transport": "smtp", "smtp_host": "127.0.0.1", "smtp_port": sink.port,
        "smtp_starttls": "off", "verp": False, "connections": 2})
    d = make_daemon(config, dns, clock=clock)
    await d.start()
    assert isinstance(d.sender.transport, SmtpTransport)  # type: ignore[union-attr]
    # The relay that stalls is given up on after 1 s, not the default 60 s.
    d.sender.transport.settings = dataclasses.replace(  # type: ignore[union-attr]
        d.sender.transport.settings, timeout=1.0)  # type: ignore[union-attr]
    try:
        yield d, sink
    finally:
        await d.stop()
        sink.close()


def rows(d: Daemon) -> list[tuple[str, int, str | None, str]]:

    with sealed.connect(d.config.database_path) as db:
        return [tuple(r) for r in db.execute(
            "SELECT state, attempts, next_attempt, coalesce(last_reply, '') FROM deliveries"
            " ORDER BY id")]


async def all_deferred(d: Daemon, attempts: int) -> bool:
    got = rows(d)
    return bool(got) and all(s == "deferred" and a == attempts for s, a, _, _ in got)


async def test_refused_then_421_then_stall_then_healthy(
    relay_daemon: tuple[Daemon, Sink], clock: FakeClock
) -> None:
    d, sink = relay_daemon
    assert d.store is not None and d.sender is not None
    sink.stop()  # phase 1: connection refused
    async with d.store.transaction() as db:
        await db.executemany(
            "INSERT INTO members (list_address, address, joined_at) VALUES (?, ?, ?)",
            [(LIST, m, iso(clock.now)) for m in MEMBERS])
        await outbox.enqueue_post(db, now=clock.now, list_address=LIST, mail_from=BOUNCES,
                                  raw=b"From: a@x.example\r\nSubject: t\r\n\r\nHallo\r\n",
                                  message_id="<t@x>", inbox_id=None, verp=False,
                                  personalize=False)
    d.sender.wake()
    await wait_for(lambda: all_deferred(d, 1), timeout=10)
    due = {n for _, _, n, _ in rows(d)}
    assert due == {iso(clock.now + RETRY_SCHEDULE[0])}, "1st retry after RETRY_SCHEDULE[0]"
    assert all("4.4.1" in r for *_, r in rows(d))  # connection refused: temporary

    sink.mode = "421"  # phase 2: the relay is back but busy
    sink.start()
    for phase, wait, attempts, reply in (("421", RETRY_SCHEDULE[0], 2, "421"),
                                         ("stall", RETRY_SCHEDULE[1], 3, "4.4.2")):
        sink.mode = phase
        before = sink.connections
        clock.advance(seconds=wait.total_seconds() - 1)  # not yet due: no attempt at all
        d.sender.wake()
        await d.sender.flush()
        assert sink.connections == before and await all_deferred(d, attempts - 1)
        clock.advance(seconds=1)
        d.sender.wake()
        await wait_for(lambda a=attempts: all_deferred(d, a), timeout=15)
        assert sink.connections > before
        assert all(reply in r for *_, r in rows(d)), rows(d)
        nxt = RETRY_SCHEDULE[attempts - 1]
        assert {n for _, _, n, _ in rows(d)} == {iso(clock.now + nxt)}
    assert sink.total() == 0, "a stalled DATA never counts as delivered"

    sink.mode = "ok"  # phase 4: healthy
    clock.advance(seconds=RETRY_SCHEDULE[2].total_seconds())
    d.sender.wake()
    await wait_for(lambda: all(s == "sent" for s, *_ in rows(d)), timeout=15)
    assert sink.snapshot() == {m: 1 for m in MEMBERS}, "everything arrives, nothing twice"
    assert all(a == 4 for _, a, _, _ in rows(d))


async def test_relay_down_longer_than_give_up_fails_and_counts_no_bounce(
    relay_daemon: tuple[Daemon, Sink], clock: FakeClock
) -> None:
    """Past GIVE_UP_AFTER a copy is failed for good; being unreachable is not a member's bounce."""
    d, sink = relay_daemon
    assert d.store is not None and d.sender is not None
    sink.stop()
    async with d.store.transaction() as db:
        await db.executemany(
            "INSERT INTO members (list_address, address, joined_at) VALUES (?, ?, ?)",
            [(LIST, m, iso(clock.now)) for m in MEMBERS])
        await outbox.enqueue_post(db, now=clock.now, list_address=LIST, mail_from=BOUNCES,
                                  raw=b"Subject: t\r\n\r\nHallo\r\n", message_id="<t2@x>",
                                  inbox_id=None, verp=False, personalize=False)
    d.sender.wake()
    tries = 1
    await wait_for(lambda: all_deferred(d, 1), timeout=10)
    while not all(s == "failed" for s, *_ in rows(d)):
        clock.advance(hours=4)
        d.sender.wake()
        tries += 1
        await wait_for(lambda t=tries: all(
            s in ("deferred", "failed") and a == t for s, a, _, _ in rows(d)), timeout=10)
        assert tries < 40
    assert tries <= 5 * 24 // 4 + 2  # about GIVE_UP_AFTER / 4 h

    with sealed.connect(d.config.database_path) as db:
        scores = [r[0] for r in db.execute("SELECT bounce_score FROM members")]
    assert scores == [0] * len(MEMBERS)
