"""Bounce upkeep: scores that forget, and telling people when delivery stops.

``score.py`` raises a member's score by one per day with a permanent
failure and disables her at the list's ``bounce_threshold``. Two daily or
frequent jobs complete that:

* ``decay``: a score only means something about *recent* failures. An
  enabled member whose last bounce is more than ``QUIET`` (7 days) ago, and
  whose score was not decayed in that time either, has her score halved and
  rounded down (4 → 2 → 1 → 0, one step a quiet week). So one bad day at a
  provider each season never adds up to a disabled member over the years,
  while a dead mailbox, which bounces every post, still reaches the
  threshold within a few posts. ``bounce_decayed_at`` makes a second run on
  the same day a no-op. Disabled members keep their score as the record of
  why they were disabled.
* ``notify_disabled``: a member disabled for bounces, not yet told
  (``disabled_notified_at IS NULL``), gets one short mail (it will probably
  bounce: that is fine, and harmless, since she receives no posts anyway)
  and every moderator gets a notice with the last failure reply. Both are
  queued in the same transaction that sets ``disabled_notified_at``, so
  each is sent once, however often the job runs.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import aiosqlite

from listserv.clock import from_iso, iso, local_text
from listserv.config import ListConfig
from listserv.context import Context
from listserv.log import event
from listserv.outbox.respond import answer, notify
from listserv.texts.compose import compose

QUIET = timedelta(days=7)


async def decay(ctx: Context) -> int:
    """Halve the bounce score of members quiet for a week; return how many changed."""
    now = ctx.clock()
    quiet_since = iso(now - QUIET)
    async with ctx.store.transaction() as db:
        cur = await db.execute(
            "UPDATE members SET bounce_score = CAST(bounce_score / 2 AS INTEGER),"
            " bounce_decayed_at = ?"
            " WHERE status = 'enabled' AND bounce_score > 0"
            "   AND (last_bounce_at IS NULL OR last_bounce_at < ?)"
            "   AND (bounce_decayed_at IS NULL OR bounce_decayed_at < ?)",
            (iso(now), quiet_since, quiet_since),
        )
    if cur.rowcount:
        event("bounce_scores_decayed", members=cur.rowcount)
    return cur.rowcount


async def _last_failure(db: aiosqlite.Connection, address: str) -> str:
    """The last 5xx a relay gave for this address, if the sender saw one."""
    async with db.execute(
        "SELECT last_reply FROM deliveries WHERE rcpt = ? AND state = 'failed'"
        " ORDER BY updated_at DESC LIMIT 1",
        (address,),
    ) as cur:
        row = await cur.fetchone()
    return str(row[0]) if row and row[0] else "-"


def _when(stamp: str | None, zone: tzinfo, language: str) -> str:
    """A stored time as the coordinator reads it ("30.11.2026, 13:19 Uhr")."""
    try:
        return local_text(from_iso(stamp or ""), zone, language)
    except ValueError:
        return stamp or "-"


async def _tell(db: aiosqlite.Connection, mlist: ListConfig, member: aiosqlite.Row,
                now: datetime, zone: tzinfo) -> bool:
    """Queue the member's mail and the moderators' notices; True if the member's went out."""
    address = member["address"]
    values: dict[str, object] = {
        "address": address,
        "name": member["display_name"] or address,
        "score": int(member["bounce_score"]),
        "threshold": mlist.bounce_threshold,
        "last_bounce": _when(member["last_bounce_at"], zone, mlist.language),
        "last_error": await _last_failure(db, address),
    }
    msg = compose(mlist, to=address, template="member_disabled", language=member["language"],
                  now=now, kind="auto-generated", values=values)
    told = await answer(db, mlist, msg, to=address, now=now, kind="member_disabled",
                        inbox_id=None)
    for moderator in mlist.moderators:
        notice = compose(mlist, to=moderator, template="moderator_member_disabled",
                         language=mlist.language, now=now, kind="auto-generated",
                         values=values)
        await notify(db, mlist, notice, rcpts=[moderator], now=now,
                     kind="moderator_member_disabled", inbox_id=None)
    await db.execute(
        "UPDATE members SET disabled_notified_at = ? WHERE id = ?", (iso(now), member["id"]))
    return told


async def notify_disabled(ctx: Context) -> int:
    """Tell members disabled for bounces, and their moderators, once; return how many."""
    now = ctx.clock()
    done = 0
    for mlist in ctx.config.lists:
        rows = await ctx.store.fetchall(
            "SELECT id, address, display_name, language, bounce_score, last_bounce_at"
            " FROM members WHERE list_address = ? AND status = 'disabled'"
            " AND disabled_reason = 'bounces' AND disabled_notified_at IS NULL ORDER BY id",
            (mlist.address,))
        for row in rows:
            async with ctx.store.transaction() as db:
                async with db.execute(  # another run may have told her meanwhile
                    "SELECT 1 FROM members WHERE id = ? AND disabled_notified_at IS NULL",
                    (row["id"],),
                ) as cur:
                    if await cur.fetchone() is None:
                        continue
                told = await _tell(db, mlist, row, now, ZoneInfo(ctx.config.server.timezone))
            event("disabled_notified", list=mlist.address, member=row["address"],
                  member_mailed=told, moderators=len(mlist.moderators))
            done += 1
    if done:
        ctx.wake_sender()
    return done
