"""Mail to ``L-bounces@D`` and ``L-bounces+user=domain@D``: a bounce, read and counted.

The VERP address names the member the bounce is about, so it is trusted
first; otherwise ``bounces.analyse`` reads the report. A permanent failure
is counted against each failed member (``bounces.score``), in the same
transaction that ends the inbox row; a delay warning, a mail that is not
a bounce, or one that names nobody is logged and changes nothing. A fault
in our own reading ends the row with an outcome starting ``ANALYSIS_FAILED``,
which ``listserv status`` counts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from listserv.bounces.analyse import ANALYSIS_FAILED, analyse
from listserv.bounces.score import ScoreChange, log_change, record_failures
from listserv.clock import Clock, utcnow
from listserv.config import Config
from listserv.intake.routing import Route, route
from listserv.log import event
from listserv.store.database import Store
from listserv.store.rows import InboxItem


def make_bounce_handler(
    config: Config, store: Store, clock: Clock = utcnow
) -> Callable[[InboxItem], Awaitable[str]]:
    """The processor's handler for ``Role.BOUNCES`` rows."""

    async def handle_bounce(item: InboxItem) -> str:
        routed = route(item.rcpt, config.lists)
        verp = routed.verp_member if isinstance(routed, Route) else None
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
