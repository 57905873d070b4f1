"""Retention (DSGVO): bodies go after retention_days, proofs and pending work stay."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from listserv.clock import iso
from listserv.config import Config
from listserv.context import Context
from listserv.daemon import Daemon
from listserv.ops.retention import purge
from listserv.store.backends import open_store
from tests.conftest import LIST, MODERATOR, FakeClock, mail
from tests.mailflow import Flow

ANNA = "anna.schmidt@schule-gelsenkirchen.de"
NEW = "neu@example.org"


def counts(flow: Flow) -> dict[str, int]:
    q = flow.query
    return {
        "inbox_raw": q("SELECT count(*) FROM inbox WHERE raw IS NOT NULL")[0][0],
        "outgoing_raw": q("SELECT count(*) FROM outgoing WHERE raw IS NOT NULL")[0][0],
        "deliveries": q("SELECT count(*) FROM deliveries")[0][0],
        "reply_log": q("SELECT count(*) FROM reply_log")[0][0],
        "consent_log": q("SELECT count(*) FROM consent_log")[0][0],
    }


async def test_bodies_go_after_retention_but_held_posts_and_consent_stay(
    clocked_daemon: Daemon, clock: FakeClock
) -> None:
    assert clocked_daemon.store is not None and clocked_daemon.scheduler is not None
    async with clocked_daemon.store.transaction() as db:
        await db.execute("INSERT INTO members (list_address, address, joined_at)"
                         " VALUES (?, ?, ?)", (LIST, ANNA, iso(clock.now)))
    flow = Flow(clocked_daemon)
    await flow.send(mail(sender=ANNA, subject="Fachtag"), mail_from=ANNA, to=LIST)
    await flow.send(mail(sender=NEW, subject="anmelden"), mail_from=NEW,
                    to=LIST.replace("@", "-join@"))
    before = counts(flow)
    # The notice, answer and confirmation were delivered, so their bodies (with the
    # tokens) are gone already; only the rows remain for retention.
    assert before["inbox_raw"] == 2 and before["outgoing_raw"] == 0
    assert before["deliveries"] >= 3
    assert before["consent_log"] >= 1 and before["reply_log"] >= 2
    run = clocked_daemon.scheduler.run_now
    assert await run("retention") == {}            # nothing is old yet
    clock.advance(days=29)
    assert await run("retention") == {"reply_log": before["reply_log"]}  # only the cap's log
    clock.advance(days=2)
    result = await run("retention")
    assert result == {"inbox_raw": 1, "deliveries": before["deliveries"]}
    after = counts(flow)
    # The held post's mail stays: the coordinator may still approve it.
    held = flow.query("SELECT unseal(i.raw) AS raw FROM posts p JOIN inbox i ON i.id = p.inbox_id")
    assert held[0][0] is not None and after["inbox_raw"] == 1
    assert after["outgoing_raw"] == 0 and after["deliveries"] == 0
    assert after["consent_log"] == before["consent_log"]       # the proof of consent
    # The rows themselves stay (what happened, no body); a second run does nothing.
    assert flow.query("SELECT count(*) FROM inbox")[0][0] == 2
    assert await run("retention") == {}
    # Once the post expires, its body goes at the next purge.
    assert await run("expire_held") == 1
    await flow.settled()
    assert "inbox_raw" not in await run("retention")   # counted from the decision
    clock.advance(days=31)
    assert (await run("retention"))["inbox_raw"] == 1
    assert counts(flow)["inbox_raw"] == 0
    assert flow.query("SELECT state FROM posts")[0][0] == "expired"


@pytest.fixture(params=["sqlite", "postgresql"])
async def ctx(config_factory: Callable[..., Config], clock: FakeClock,
              request: pytest.FixtureRequest) -> AsyncIterator[Context]:
    """The same purge on both backends (secure_delete is SQLite's alone)."""
    lists = [{"address": LIST, "display_name": "SAS", "moderators": [MODERATOR],
              "retention_days": 7},
             {"address": "other@gelsenkirchen.de", "display_name": "O",
              "moderators": [MODERATOR]}]
    extra = ""
    if request.param == "postgresql":
        extra = f'[store]\nurl = "{request.getfixturevalue("pg_url")}"\n'
    cfg = config_factory(lists=lists, extra=extra)
    store = await open_store(cfg, clock=clock)
    yield Context(config=cfg, store=store, clock=clock)
    await store.close()


async def insert(ctx: Context, table: str, **values: Any) -> int:
    names = ", ".join(values)
    marks = ", ".join("?" * len(values))
    async with ctx.store.transaction() as db:
        cur = await db.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})",
                               tuple(values.values()))
    assert cur.lastrowid is not None
    return cur.lastrowid


async def inbox_row(ctx: Context, list_address: str, state: str, **extra: Any) -> int:
    now = iso(ctx.clock())
    return await insert(ctx, "inbox", received_at=now, peer="127.0.0.1:1", mail_from="a@b.de",
                        rcpt=list_address, list_address=list_address, role="post", size=3,
                        raw=b"abc", state=state,
                        handled_at=now if state in ("done", "failed") else None, **extra)


async def raw_of(ctx: Context, table: str, row_id: int) -> bytes | None:
    row = await ctx.store.fetchone(f"SELECT unseal(raw) AS raw FROM {table} WHERE id = ?",
                                   (row_id,))
    assert row is not None
    return row[0]


async def test_retention_days_per_list_and_work_in_progress_is_kept(
    ctx: Context, clock: FakeClock
) -> None:
    short_done = await inbox_row(ctx, LIST, "done")
    short_failed = await inbox_row(ctx, LIST, "failed")
    short_new = await inbox_row(ctx, LIST, "new")                 # not handled yet
    approved = await inbox_row(ctx, LIST, "done")                 # approved, not queued yet
    await insert(ctx, "posts", inbox_id=approved, list_address=LIST, sender="a@b.de",
                 rule="r", reason="r", created_at=iso(clock.now), state="approved")
    long_done = await inbox_row(ctx, "other@gelsenkirchen.de", "done")   # 30 days
    gone_list = await inbox_row(ctx, "gone@gelsenkirchen.de", "done")    # default 30
    sent = await insert(ctx, "outgoing", created_at=iso(clock.now), kind="reply",
                        list_address=LIST, mail_from="x@y.de", raw=b"copy")
    open_ = await insert(ctx, "outgoing", created_at=iso(clock.now), kind="post",
                         list_address=LIST, mail_from="x@y.de", raw=b"post")
    for rcpt, state, out in (("a@b.de", "sent", sent), ("c@d.de", "failed", sent),
                             ("a@b.de", "sent", open_), ("e@f.de", "deferred", open_)):
        await insert(ctx, "deliveries", outgoing_id=out, rcpt=rcpt, domain="d", state=state,
                     updated_at=iso(clock.now))
    clock.advance(days=8)
    assert await purge(ctx) == {"inbox_raw": 2, "outgoing_raw": 1, "deliveries": 2}
    assert await raw_of(ctx, "inbox", short_done) is None
    assert await raw_of(ctx, "inbox", short_failed) is None
    for kept in (short_new, approved, long_done, gone_list):
        assert await raw_of(ctx, "inbox", kept) == b"abc"
    assert await raw_of(ctx, "outgoing", sent) is None
    assert await raw_of(ctx, "outgoing", open_) == b"post"   # one recipient still deferred
    clock.advance(days=23)
    assert await purge(ctx) == {"inbox_raw": 2}              # the 30-day lists now
    assert await raw_of(ctx, "inbox", approved) == b"abc"
    assert await purge(ctx) == {}


async def test_purge_leaves_secure_delete_as_it_was(ctx: Context) -> None:
    if ctx.store.dialect != "sqlite":
        pytest.skip("PRAGMA secure_delete is SQLite's; PostgreSQL has no such switch")
    async def secure_delete() -> int:
        row = await ctx.store.fetchone("PRAGMA secure_delete")
        assert row is not None
        return int(row[0])

    before = await secure_delete()
    await purge(ctx)
    assert await secure_delete() == before


async def test_job_runs_go_after_a_week(ctx: Context, clock: FakeClock) -> None:
    """A slot is asked about only on its day or hour: older rows are dead weight."""
    assert await ctx.store.run_once("bounce_decay", "2026-11-01")
    clock.advance(days=6)
    assert await ctx.store.run_once("bounce_decay", "2026-11-07")
    clock.advance(days=2)
    assert await purge(ctx) == {"job_runs": 1}
    rows = await ctx.store.fetchall("SELECT slot FROM job_runs")
    assert [r[0] for r in rows] == ["2026-11-07"]
