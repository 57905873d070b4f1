"""Mail to ``L-bounces@D`` and ``L-bounces+user=domain=MAC@D``: a bounce, read and counted.

A bounce costs a member only when we can tell it answers a mail we sent
(issue 12, class 4), because anyone can write a bounce:

* a VERP address names the member, but only a correct MAC
  (``bounces.verp``, keyed by ``<data_dir>/verp.key``) makes that name
  count; an address with a wrong or missing MAC (also the old form
  without one) scores nobody;
* to the plain ``L-bounces@D`` only an RFC 3464 delivery-status part is
  evidence; ``X-Failed-Recipients`` and the prose of a mail are what a
  forger writes, so they are logged and score nobody;
* either way, a member is counted only when the deliveries table shows a
  copy sent to her in the last ``score.BOUNCE_WINDOW`` days.

A permanent failure that passes is counted (``bounces.score``) in the same
transaction that ends the inbox row; a delay warning, a mail that is not
a bounce, or one that names nobody is logged and changes nothing. A fault
in our own reading ends the row with an outcome starting ``ANALYSIS_FAILED``,
which ``listserv status`` counts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from listserv.bounces import verp as verp_mac
from listserv.bounces.analyse import ANALYSIS_FAILED, analyse
from listserv.bounces.score import ScoreChange, delivered_recently, log_change, record_failures
from listserv.clock import Clock, utcnow
from listserv.config import Config
from listserv.log import event
from listserv.store import keys
from listserv.store.database import Store
from listserv.store.rows import InboxItem


def make_bounce_handler(
    config: Config, store: Store, clock: Clock = utcnow
) -> Callable[[InboxItem], Awaitable[str]]:
    """The processor's handler for ``Role.BOUNCES`` rows."""
    key = keys.key(config.server.data_dir, keys.VERP_KEY)

    async def handle_bounce(item: InboxItem) -> str:
        extension = item.extension  # as intake routed it, in the case it came in
        verp = verp_mac.member(key, item.list_address, extension) if extension else None
        tag = verp_mac.opaque_tag(extension)
        if verp is None and tag is not None:
            rows = await store.fetchall("SELECT address FROM members WHERE list_address = ?",
                                        (item.list_address,))
            verp = verp_mac.find(key, item.list_address, tag, (r[0] for r in rows))
        if extension and verp is None:
            event("bounce_forged", level="warning", inbox=item.id, msgid=item.message_id,
                  list=item.list_address, why="VERP address without a valid MAC")
            return "not counted: VERP address without a valid MAC"
        mlist = config.find_list(item.list_address)
        report = await asyncio.to_thread(analyse, item.raw, verp_recipient=verp)
        if report.error:
            # Our fault, not the sender's: logged and counted (listserv status).
            event("bounce_analysis_failed", level="error", inbox=item.id,
                  msgid=item.message_id, list=item.list_address, error=report.error)
            return f"{ANALYSIS_FAILED}: {report.error}"
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
        if report.evidence == "guess":
            event("bounce_not_counted", inbox=item.id, msgid=item.message_id,
                  list=item.list_address, named=len(report.permanent),
                  why="no VERP and no RFC 3464 report: text alone scores nobody")
            return f"not counted: {len(report.permanent)} named without evidence"
        threshold = mlist.bounce_threshold if mlist is not None else 5
        now = clock()
        async with store.transaction() as db:
            ours = [a for a in sorted(report.permanent)
                    if await delivered_recently(db, list_address=item.list_address,
                                                address=a, now=now)]
            change = await record_failures(db, list_address=item.list_address,
                                           addresses=ours, now=now, threshold=threshold)
            outcome = _outcome(change, len(report.permanent) - len(ours))
            await store.finish_in(db, item.id, outcome)
        if len(ours) < len(report.permanent):
            event("bounce_not_counted", inbox=item.id, msgid=item.message_id,
                  list=item.list_address, named=len(report.permanent) - len(ours),
                  why="no copy sent to that address in the last days")
        log_change(change, source="verp" if verp else "dsn", msgid=item.message_id)
        return outcome

    return handle_bounce


def _outcome(change: ScoreChange, not_ours: int) -> str:
    parts = [f"counted {len(change.counted)}"]
    if change.disabled:
        parts.append(f"disabled {len(change.disabled)}")
    if change.not_members:
        parts.append(f"unknown {len(change.not_members)}")
    if not_ours:
        parts.append(f"not sent to {not_ours}")
    return ", ".join(parts)
