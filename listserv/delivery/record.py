"""Writing the sender's outcomes: one commit for many transactions, then their log lines.

The sender's recorder collects the outcomes of all connections and hands
them here together: every row's new state (``plan.classify`` decides it),
the answers' bodies that may go (``outbox.queue.strip_delivered``) and the
members' bounce scores, in ONE transaction, because a commit costs more than
the transaction it records. Log lines are returned, not written, so they
appear only once the commit has happened.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

from listserv.bounces import score
from listserv.clock import iso
from listserv.config import Config
from listserv.delivery.outcomes import DeliveryResult
from listserv.delivery.plan import Job, Outgoing, Records, classify
from listserv.log import event
from listserv.outbox.queue import strip_delivered
from listserv.store.database import Store

_UPDATE = ("UPDATE deliveries SET state = '{}', attempts = attempts + 1,"
           " next_attempt = {}, last_reply = ?, updated_at = ?"
           " WHERE id = ? AND state = 'sending'")


async def write(
    store: Store, config: Config, results: list[tuple[Job, DeliveryResult]], unsent: list[Job],
    *, attempts: Mapping[int, int], outgoing: Mapping[int, Outgoing], now: datetime,
    schedule: Sequence[timedelta], give_up_after: timedelta,
) -> tuple[Records, list[Callable[[], None]]]:
    """Record ``results`` (and put ``unsent`` back to pending) in one commit."""
    stamp = iso(now)
    rec = classify(results, attempts, outgoing, now, schedule=schedule,
                   give_up_after=give_up_after)
    changes = []
    async with store.transaction() as db:
        # One statement per kind of outcome present (each is a thread hop).
        for sql, params in (
            (_UPDATE.format("sent", "NULL"), [(reply, stamp, i) for reply, i in rec.sent]),
            (_UPDATE.format("failed", "NULL"), [(reply, stamp, i) for reply, i in rec.failed]),
            (_UPDATE.format("deferred", "?"),
             [(iso(when), reply, stamp, i) for when, reply, i in rec.deferred]),
            ("UPDATE deliveries SET state = 'pending', next_attempt = NULL"
             " WHERE id = ? AND state = 'sending'", [(i,) for job in unsent for i in job.ids]),
        ):
            if params:
                await db.executemany(sql, params)
        await strip_delivered(db, {j.outgoing_id for j, _ in results if j.answer})
        for list_address, members in rec.bounced.items():
            mlist = config.find_list(list_address)
            changes.append(await score.record_failures(
                db, list_address=list_address, addresses=members, now=now,
                threshold=mlist.bounce_threshold if mlist else 5))
    lines: list[Callable[[], None]] = [
        functools.partial(_log, outgoing_id, outgoing.get(outgoing_id), what, items)
        for (outgoing_id, what), items in rec.summary.items()]
    lines += [functools.partial(score.log_change, c, source="delivery") for c in changes]
    return rec, lines


def _log(outgoing_id: int, info: Outgoing | None, what: str, items: list[str]) -> None:
    """One line per batch delivered or deferred; one per recipient that failed."""
    msgid = info.message_id if info else ""
    if what == "sent":
        event("delivered", outgoing=outgoing_id, msgid=msgid, rcpts=len(items))
    elif what == "deferred":
        event("deferred", level="warning", outgoing=outgoing_id, msgid=msgid,
              rcpts=len(items), reply=items[0].split(" ", 1)[1])
    else:
        for item in items:
            rcpt, _, reply = item.partition(" ")
            event("failed", level="warning", outgoing=outgoing_id, msgid=msgid,
                  rcpt=rcpt, reply=reply)
