"""Bounce scores: the shell around ``bounces.analyse``, and what a 5xx at delivery costs.

A member's ``bounce_score`` rises by one for a permanent failure, at most
once per UTC day: a dead mailbox bounces every post, and a list that posts
ten times on one day should not disable a member for one bad day at her
provider. At the list's ``bounce_threshold`` the member is disabled
(``status = 'disabled'``, ``disabled_reason = 'bounces'``): kept, not
removed, so she can be enabled again. Temporary failures (delay warnings,
4xx) only go to the log. Decay after a quiet period is a scheduler job.

Two sources feed the same function, ``record_failures``: the sender, for a
``5xx`` answered to a member's RCPT or DATA, and the BOUNCES handler, for a
bounce mail to ``L-bounces@D`` or a VERP address ``L-bounces+user=dom@D``
(VERP first, flufl.bounce and our own readers as fallback).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

import aiosqlite

from listserv.bounces.analyse import analyse
from listserv.clock import Clock, iso, utcnow
from listserv.config import Config
from listserv.intake.routing import Route, route
from listserv.log import event
from listserv.store.database import Store
from listserv.store.rows import InboxItem


@dataclass(frozen=True)
class ScoreChange:
    """What one ``record_failures`` call did, for the log after its commit."""

    list_address: str
    counted: list[tuple[str, float]] = field(default_factory=list)  # (address, new score)
    already_today: list[str] = field(default_factory=list)
    not_members: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)


async def record_failures(
    db: aiosqlite.Connection,
    *,
    list_address: str,
    addresses: Iterable[str],
    now: datetime,
    threshold: int,
) -> ScoreChange:
    """Count one permanent failure for each address, inside the caller's transaction."""
    change = ScoreChange(list_address)
    today = iso(now)[:10]
    for address in sorted({a.lower() for a in addresses}):
        async with db.execute(
            "UPDATE members SET bounce_score = bounce_score + 1, last_bounce_at = ?"
            " WHERE list_address = ? AND address = ?"
            "   AND (last_bounce_at IS NULL OR substr(last_bounce_at, 1, 10) < ?)"
            " RETURNING bounce_score",
            (iso(now), list_address, address, today),
        ) as cur:
            row = await cur.fetchone()
        if row is not None:
            change.counted.append((address, float(row[0])))
            continue
        async with db.execute(
            "SELECT 1 FROM members WHERE list_address = ? AND address = ?",
            (list_address, address),
        ) as cur:
            known = await cur.fetchone()
        (change.already_today if known else change.not_members).append(address)
    for address, _ in change.counted:
        async with db.execute(
            "UPDATE members SET status = 'disabled', disabled_reason = 'bounces'"
            " WHERE list_address = ? AND address = ? AND status = 'enabled'"
            "   AND bounce_score >= ? RETURNING address",
            (list_address, address, threshold),
        ) as cur:
            if await cur.fetchone() is not None:
                change.disabled.append(address)
    return change


def log_change(change: ScoreChange, *, source: str, msgid: str = "", reply: str = "") -> None:
    """One ``bounced`` line per counted failure, one ``disabled`` per disabled member."""
    for address, score in change.counted:
        event("bounced", list=change.list_address, member=address, score=score,
              source=source, msgid=msgid or None, reply=reply or None)
    for address in change.already_today:
        event("bounced", list=change.list_address, member=address, counted=False,
              why="already counted today", source=source, msgid=msgid or None)
    for address in change.not_members:
        event("bounce_unknown", list=change.list_address, address=address, source=source,
              msgid=msgid or None)
    for address in change.disabled:
        event("disabled", level="warning", list=change.list_address, member=address,
              reason="bounces")


def make_bounce_handler(
    config: Config, store: Store, clock: Clock = utcnow
) -> Callable[[InboxItem], Awaitable[str]]:
    """The processor's handler for ``Role.BOUNCES`` rows."""

    async def handle_bounce(item: InboxItem) -> str:
        routed = route(item.rcpt, config.lists)
        verp = routed.verp_member if isinstance(routed, Route) else None
        mlist = config.find_list(item.list_address)
        report = analyse(item.raw, verp_recipient=verp)
        if not report.is_bounce:
            event("bounce_ignored", inbox=item.id, msgid=item.message_id,
                  list=item.list_address, why="not a delivery failure")
            return "not a bounce"
        for address in sorted(report.temporary):
            event("bounce_warning", inbox=item.id, msgid=item.message_id,
                  list=item.list_address, member=address)
        if not report.permanent:
            if not report.temporary:
                event("bounce_unreadable", inbox=item.id, msgid=item.message_id,
                      list=item.list_address)
            return "warning" if report.temporary else "bounce names nobody"
        threshold = mlist.bounce_threshold if mlist is not None else 5
        async with store.transaction() as db:
            change = await record_failures(db, list_address=item.list_address,
                                           addresses=report.permanent, now=clock(),
                                           threshold=threshold)
            outcome = _outcome(change)
            await store.finish_in(db, item.id, outcome)
        log_change(change, source="verp" if verp else "bounce", msgid=item.message_id)
        return outcome

    return handle_bounce


def _outcome(change: ScoreChange) -> str:
    parts = [f"counted {len(change.counted)}"]
    if change.disabled:
        parts.append(f"disabled {len(change.disabled)}")
    if change.not_members:
        parts.append(f"unknown {len(change.not_members)}")
    return ", ".join(parts)
