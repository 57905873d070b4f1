"""Mail to the list address itself: a join/leave request, or a post.

A mail to ``L@D`` whose subject or first line asks to join or leave
("Bitte nehmen Sie mich in den Verteiler auf") is handled as that command,
as people write to the list address the way they write to a colleague.
Everything else is a post and goes to the post policy.
"""

from __future__ import annotations

import asyncio

import aiosqlite

from listserv.clock import iso
from listserv.commands.parse import Context as ParseContext
from listserv.commands.parse import Verb, parse_commands
from listserv.context import Context
from listserv.inbox.automatic import automatic_reason
from listserv.inbox.processor import Handler, Parker
from listserv.inbox.request import Request, build
from listserv.mail.message import raw_subject_of
from listserv.membership.actions import subscribe, unsubscribe
from listserv.moderation.posts import handle_post
from listserv.roles.mailcommands import command_handler
from listserv.store.rows import InboxItem


def command_in_post(req: Request) -> Verb | None:
    for command in parse_commands(req.msg, ParseContext.POST):
        if command.verb in (Verb.SUBSCRIBE, Verb.UNSUBSCRIBE):
            return command.verb
    return None


async def _as_command(db: aiosqlite.Connection, req: Request) -> str:
    if command_in_post(req) is Verb.SUBSCRIBE:
        return await subscribe(db, req)
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
        if automatic is None and command_in_post(req) is not None:
            return await as_command(item)
        return await handle_post(ctx, req)

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
