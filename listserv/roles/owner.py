"""Mail to ``L-owner@D``: forwarded to the moderators, never to the members.

The original travels as an attachment under a short cover, so the
coordinator sees who wrote and answers the person directly: the asker's
From is the forward's Reply-To (never one of our own addresses: a reply
to those would come back as a command or loop), and the forward itself
comes from ``L-owner@D`` with our X-Loop, so a plain reply never reaches
``-request``. The asker's address is shown only to the moderators, who
see it in the attached original anyway. Automatic
mail, bounces and loops are dropped (a robot writing to the owner address
would otherwise be answered by nobody but fill her inbox), and each
sender's forwards are capped per day like every automatic answer.
"""

from __future__ import annotations

from datetime import timedelta
from email.headerregistry import Address

from listserv.clock import iso
from listserv.context import Context
from listserv.inbox.automatic import automatic_reason
from listserv.inbox.processor import Handler
from listserv.inbox.request import Request, build
from listserv.intake.routing import is_list_address
from listserv.log import event
from listserv.mail.message import message_id_of
from listserv.mail.text import header_text
from listserv.moderation.notices import owner_forward
from listserv.outbox.respond import notify_raw
from listserv.store.rows import InboxItem


def _asker(req: Request, ctx: Context) -> Address | None:
    """Where the coordinator's reply should go: the From, if it is a usable stranger's."""
    address = req.from_.as_given or req.sender
    if not address or not address.isascii() or is_list_address(address, ctx.config.lists):
        return None   # ours (a loop), or an address an ASCII header cannot carry
    try:
        return Address(display_name=req.display_name, addr_spec=address)
    except (ValueError, IndexError, TypeError):  # an address the header registry refuses
        return None


def build_handler(ctx: Context) -> Handler:
    async def handle(item: InboxItem) -> str:
        now = ctx.clock()
        try:
            req = build(item, ctx.config, now)
        except LookupError as exc:
            return f"dropped: {exc}"
        mlist = req.mlist
        reason = automatic_reason(req.msg, item.mail_from, ctx.config.lists)
        if reason is None and mlist.list_id in header_text(req.msg, "List-Id").lower():
            reason = "loop"
        if reason is not None:
            event("owner_dropped", reason=reason, inbox=item.id, msgid=item.message_id)
            return f"dropped: {reason}"
        sender = req.sender or item.mail_from.lower()
        async with ctx.store.transaction() as db:
            async with db.execute(
                "SELECT count(*) FROM reply_log WHERE address = ? AND kind = 'owner_forward'"
                " AND at > ?", (sender, iso(now - timedelta(days=1)))) as cur:
                row = await cur.fetchone()
            if row is not None and row[0] >= mlist.replies_per_address_per_day:
                event("owner_dropped", reason="rate_limit", inbox=item.id, sender=sender)
                outcome = "dropped: too many forwards from this sender today"
            else:
                await db.execute("INSERT INTO reply_log (address, at, kind)"
                                 " VALUES (?, ?, 'owner_forward')", (sender, iso(now)))
                asker = _asker(req, ctx)
                for moderator in mlist.moderators:
                    raw = owner_forward(mlist, to=moderator, original=req.msg, raw=item.raw,
                                        now=now, asker=asker)
                    await notify_raw(db, mlist, raw, rcpts=[moderator], now=now,
                                     kind="owner_forward", inbox_id=item.id,
                                     message_id=message_id_of(raw))
                outcome = f"forwarded to {len(mlist.moderators)} moderator(s)"
            await ctx.store.finish_in(db, item.id, outcome)
        ctx.wake_sender()
        return outcome

    return handle
