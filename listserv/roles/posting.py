"""Mail to the list address itself: a join/leave request, a colleague's invitation, or a post.

People write to the list address the way they write to a colleague, so
``commands.requests`` reads the mail first: "ich möchte gerne auf die
Mailingliste" is a join, "bitte streichen Sie mich aus dem Verteiler" a
leave (each then runs as if sent to ``-request``), "bitte nehmen Sie meine
Kollegin x@… auf" becomes a ready invitation for the coordinator. Everything
else is a post and goes to the post policy; a post that only *looks* like a
request is held as usual, and its notice offers "aufnehmen".
"""

from __future__ import annotations

import asyncio

import aiosqlite

from listserv.clock import iso
from listserv.commands.requests import Ask, Asked, read_request
from listserv.context import Context
from listserv.inbox.automatic import automatic_reason
from listserv.inbox.processor import Handler, Parker
from listserv.inbox.request import Request, build
from listserv.mail.message import raw_subject_of
from listserv.membership.actions import ask_for_colleague, subscribe, unsubscribe
from listserv.moderation.posts import handle_post
from listserv.roles.mailcommands import command_handler
from listserv.store.rows import InboxItem


def request_in_post(req: Request) -> Asked:
    """What the mail asks, read from its subject and first lines (``commands.requests``)."""
    return read_request(req.msg, req.sender or "")


async def _as_command(db: aiosqlite.Connection, req: Request) -> str:
    asked = request_in_post(req)
    if asked.ask is Ask.JOIN:
        return await subscribe(db, req)
    if asked.ask is Ask.COLLEAGUE:
        return await ask_for_colleague(db, req, asked.address)
    return await unsubscribe(db, req)


def build_handler(ctx: Context) -> Handler:
    as_command = command_handler(ctx, _as_command)

    async def handle(item: InboxItem) -> str:
        try:
            req = await asyncio.to_thread(build, item, ctx.config, ctx.clock())
        except LookupError as exc:
            await ctx.store.finish(item.id, f"dropped: {exc}")
            return f"dropped: {exc}"
        automatic = automatic_reason(req.msg, item.mail_from, ctx.config.lists)
        asked = request_in_post(req) if automatic is None and req.sender else Asked(Ask.NONE)
        if asked.ask in (Ask.JOIN, Ask.LEAVE, Ask.COLLEAGUE):
            return await as_command(item)
        return await handle_post(ctx, req, request_like=asked.ask is Ask.LIKE_JOIN)

    return handle


def build_parker(ctx: Context) -> Parker:
    """A post the processor could not examine: a posts row in state ``parked``.

    So the coordinator sees it where she sees held posts (``listserv held
    list``, ``listserv status``) and can discard it; its subject is shown
    as the raw bytes said it, since decoding it is what failed.
    """

    async def park(item: InboxItem, reason: str) -> str:
        async with ctx.store.transaction() as db:
            cursor = await db.execute(
                "INSERT OR IGNORE INTO posts (inbox_id, list_address, sender, subject, size, rule,"
                " reason, created_at, state, decided_at, decided_by)"
                " VALUES (?, ?, ?, ?, ?, 'unreadable', ?, ?, 'parked', ?, 'worker')",
                (item.id, item.list_address, item.mail_from or "-", raw_subject_of(item.raw),
                 len(item.raw), reason[:300], item.received_at, iso(ctx.clock())))
            outcome = f"parked: {reason}" + (f", post {cursor.lastrowid}" if cursor.rowcount
                                             else "")
            await ctx.store.finish_in(db, item.id, outcome)
        return outcome

    return park
