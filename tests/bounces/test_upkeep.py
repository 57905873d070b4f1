"""Bounce upkeep: scores decay after quiet weeks; disabled members and moderators are told once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from typing import Any

import pytest

from listserv.bounces.upkeep import decay
from listserv.clock import iso
from listserv.config import Config, ListConfig
from listserv.context import Context
from listserv.daemon import Daemon
from listserv.store.database import Store
from listserv.texts.compose import standard_values
from listserv.texts.render import render
from tests.conftest import LIST, MODERATOR, FakeClock, FakeDns, mail, make_daemon
from tests.delivery import test_transports as test_transports
from tests.delivery.test_transports import Relay
from tests.mailflow import Flow

serve = test_transports.serve  # the relay sink fixture

ANNA = "anna@x.de"
GONE = "gone@y.de"


@pytest.fixture
async def ctx(cfg: Config, clock: FakeClock) -> AsyncIterator[Context]:
    store = await Store.open(cfg.database_path, clock=clock)
    yield Context(config=cfg, store=store, clock=clock)
    await store.close()


async def add(ctx: Context, address: str, score: float, last_bounce_days_ago: float | None,
              status: str = "enabled") -> None:
    now = ctx.clock()
    last = None if last_bounce_days_ago is None else iso(now - timedelta(days=last_bounce_days_ago))
    async with ctx.store.transaction() as db:
        await db.execute(
            "INSERT INTO members (list_address, address, joined_at, bounce_score,"
            " last_bounce_at, status) VALUES (?, ?, ?, ?, ?, ?)",
            (LIST, address, iso(now), score, last, status))


async def scores(ctx: Context) -> dict[str, float]:
    return {r[0]: r[1] for r in await ctx.store.fetchall(
        "SELECT address, bounce_score FROM members")}


async def test_decay_halves_quiet_scores_once_a_week(ctx: Context, clock: FakeClock) -> None:
    await add(ctx, "quiet@x.de", 4, 8)
    await add(ctx, "recent@x.de", 4, 2)          # bounced this week: keeps counting up
    await add(ctx, "disabled@x.de", 5, 30, status="disabled")   # the record of why
    await add(ctx, "clean@x.de", 0, None)
    assert await decay(ctx) == 1
    assert await scores(ctx) == {"quiet@x.de": 2, "recent@x.de": 4, "disabled@x.de": 5,
                                 "clean@x.de": 0}
    assert await decay(ctx) == 0                 # a second run the same day changes nothing
    clock.advance(days=1)
    assert await decay(ctx) == 0                 # one step per quiet week
    clock.advance(days=6, minutes=1)
    assert await decay(ctx) == 2                 # quiet: 2 -> 1; recent is quiet now: 4 -> 2
    clock.advance(days=7, minutes=1)
    assert await decay(ctx) == 2
    clock.advance(days=7, minutes=1)
    assert await decay(ctx) == 1                 # recent 1 -> 0; quiet was already 0
    assert await scores(ctx) == {"quiet@x.de": 0, "recent@x.de": 0, "disabled@x.de": 5,
                                 "clean@x.de": 0}


@pytest.mark.parametrize("language", ["de", "en"])
@pytest.mark.parametrize("template", ["member_disabled", "moderator_member_disabled"])
def test_templates_fill_every_placeholder(language: str, template: str) -> None:
    values = {"address": GONE, "name": "G", "score": 5, "threshold": 5,
              "last_bounce": "2026-11-25", "last_error": "550 5.1.1 user unknown",
              **standard_values(ListConfig(LIST, "SAS", (MODERATOR,)))}
    text = render(language, template, **values)
    assert text.subject and GONE in text.subject + text.body and "$" not in text.body


def parsed(data: bytes) -> EmailMessage:
    msg = message_from_bytes(data, policy=default)
    assert isinstance(msg, EmailMessage)
    return msg


@pytest.fixture
async def bouncing(serve: Callable[..., Any], config_factory: Callable[..., Config],
                   clock: FakeClock, dns: FakeDns) -> AsyncIterator[tuple[Daemon, Relay]]:
    """A daemon on an open list (threshold 1) whose relay refuses GONE with 550."""
    relay = await serve(Relay(rcpt_reply=lambda r: "550 5.1.1 user unknown"
                              if r == GONE else None))
    cfg = config_factory(
        delivery={"transport": "smtp", "smtp_host": "127.0.0.1", "smtp_port": relay.port,
                  "smtp_starttls": "off", "verp": False},
        lists=[{"address": LIST, "display_name": "SAS", "moderators": [MODERATOR],
                "post_policy": "open", "bounce_threshold": 1, "language": "de"}])
    daemon = make_daemon(cfg, dns, clock=clock)
    await daemon.start()
    try:
        yield daemon, relay
    finally:
        await daemon.stop()


async def test_a_member_disabled_for_bounces_and_the_moderators_are_told_once(
    bouncing: tuple[Daemon, Relay], clock: FakeClock
) -> None:
    daemon, relay = bouncing
    assert daemon.store is not None and daemon.scheduler is not None
    async with daemon.store.transaction() as db:
        await db.executemany("INSERT INTO members (list_address, address, joined_at, language)"
                             " VALUES (?, ?, ?, ?)",
                             [(LIST, ANNA, iso(clock.now), "de"),
                              (LIST, GONE, iso(clock.now), "en")])
    flow = Flow(daemon)
    await flow.send(mail(sender=ANNA, subject="Fachtag"), mail_from=ANNA, to=LIST)
    status = flow.query("SELECT status, disabled_reason FROM members WHERE address = ?", (GONE,))
    assert tuple(status[0]) == ("disabled", "bounces")
    before = len(relay.messages)
    assert await daemon.scheduler.run_now("notify_disabled") == 1
    await flow.settled()
    notices = [parsed(m.data) for m in relay.messages[before:] if m.rcpts == [MODERATOR]]
    assert len(notices) == 1
    notice = notices[0]
    assert notice["Subject"] == f"Zustellung an {GONE} angehalten"
    body = notice.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "550 5.1.1 user unknown" in body and "25.11.2026, 10:00 Uhr" in body
    assert notice["Auto-Submitted"] == "auto-generated"
    # The member's own mail (English, her language) was tried, and bounced: that is fine.
    mailed = flow.query("SELECT d.state, o.kind FROM deliveries d JOIN outgoing o"
                        " ON o.id = d.outgoing_id WHERE d.rcpt = ? ORDER BY d.id", (GONE,))
    assert [tuple(r) for r in mailed] == [("failed", "post"), ("failed", "reply")]
    # Its body is gone once every copy is final (answers carry tokens: issue 12, class 6);
    # the Message-ID kept in the row shows it was hers, in English.
    kept = flow.query("SELECT o.raw, o.message_id FROM outgoing o"
                      " JOIN deliveries d ON d.outgoing_id = o.id"
                      " WHERE d.rcpt = ? AND o.kind = 'reply'", (GONE,))[0]
    assert kept[0] is None and kept[1]
    # Told once: later runs find nobody, and the reply's 550 changes no status.
    assert await daemon.scheduler.run_now("notify_disabled") == 0
    clock.advance(days=1)
    assert await daemon.scheduler.run_now("notify_disabled") == 0
    assert flow.query("SELECT disabled_notified_at FROM members WHERE address = ?",
                      (GONE,))[0][0] is not None
    assert flow.query("SELECT disabled_notified_at FROM members WHERE address = ?",
                      (ANNA,))[0][0] is None
