"""Bounce scores: what a permanent failure costs a member, from a bounce or a 5xx.

A member's ``bounce_score`` rises by one for a permanent failure, at most
once per UTC day: a dead mailbox bounces every post, and a list that posts
ten times on one day should not disable a member for one bad day at her
provider. At the list's ``bounce_threshold`` the member is disabled
(``status = 'disabled'``, ``disabled_reason = 'bounces'``): kept, not
removed, so she can be enabled again. Temporary failures (delay warnings,
4xx) only go to the log. Decay after a quiet period is a scheduler job.

Two sources feed the same function, ``record_failures``: the sender, for a
``5xx`` answered to a member's RCPT or DATA, and the handler of mail to
``L-bounces@D`` or a VERP address ``L-bounces+user=dom@D``
(``roles.bounce_mail``, which reads it with ``analyse``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import aiosqlite

from listserv.clock import iso
from listserv.log import event


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


#: A bounce counts only for a copy sent this recently: MTAs give up on a message after
#: 5 days (Postfix's maximal_queue_lifetime, Exim's default), and the bounce follows.
BOUNCE_WINDOW = timedelta(days=7)


async def delivered_recently(
    db: aiosqlite.Connection, *, list_address: str, address: str, now: datetime,
    window: timedelta = BOUNCE_WINDOW,
) -> bool:
    """Did we hand a copy for the member ``address`` of this list to the relay lately?

    A bounce is an answer to a mail we sent; one about an address we sent
    nothing to is somebody's invention and must cost the member nothing.
    The query walks the list's recent ``outgoing`` rows (few) and looks each
    up in the ``(outgoing_id, rcpt)`` index, so it needs no index of its own
    that the fan-out would have to fill.
    """
    async with db.execute(
        "SELECT address, coalesce(nullif(address_as_given, ''), address) FROM members"
        " WHERE list_address = ? AND address = ?", (list_address, address.lower()),
    ) as cur:
        row = await cur.fetchone()
    if row is None:
        return False
    async with db.execute(
        "SELECT 1 FROM outgoing o WHERE o.list_address = ? AND o.created_at >= ?"
        " AND EXISTS (SELECT 1 FROM deliveries d WHERE d.outgoing_id = o.id"
        "             AND d.rcpt IN (?, ?) AND d.state = 'sent') LIMIT 1",
        (list_address, iso(now - window), row[0], row[1]),
    ) as cur:
        return await cur.fetchone() is not None


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
