"""Inbox handlers for the command addresses: request, join, leave, confirm.

Each handler follows the same steps, in one transaction:

1. build the ``Request`` (parse once, validate the From);
2. drop automatic mail (``inbox.automatic``) with a log line:
   it never confirms, approves or gets an answer;
3. answer an unusable From with a plain explanation, to the envelope
   sender when that one is usable, and change nothing;
4. carry out the command, queue the answer, end the inbox row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial

import aiosqlite

from listserv.commands.parse import Context as ParseContext
from listserv.commands.parse import Verb, find_token, parse_commands
from listserv.commands.requests import Ask, read_request
from listserv.config import WebConfig
from listserv.context import Context
from listserv.inbox.automatic import automatic_reason
from listserv.inbox.processor import Handler
from listserv.inbox.proof import moderator_proven
from listserv.inbox.request import Request, build
from listserv.log import event
from listserv.mail.message import normalise_address, subject
from listserv.membership.actions import (
    ask_for_colleague,
    guess_language,
    moderator_change,
    reply,
    set_delivery,
    subscribe,
    unsubscribe,
    who,
)
from listserv.membership.logins import by_mail as settings_link
from listserv.moderation.publish import publish_approved
from listserv.roles.archive_mail import archive_command
from listserv.roles.confirm import redeem
from listserv.store.rows import InboxItem

Action = Callable[[aiosqlite.Connection, Request], Awaitable[str]]


def command_handler(
    ctx: Context, action: Action, after: Callable[[Context], Awaitable[object]] | None = None
) -> Handler:
    """Wrap ``action`` in the common steps; the result is a processor handler.

    ``after`` runs once the transaction has committed (publishing a post a
    moderator has just approved needs DNS, which must not hold the write lock).
    """

    async def handle(item: InboxItem) -> str:
        now = ctx.clock()
        try:
            req = await asyncio.to_thread(build, item, ctx.config, now)
        except LookupError as exc:
            await ctx.store.finish(item.id, f"dropped: {exc}")
            return f"dropped: {exc}"
        outcome: str
        # Before the transaction: the DNS lookup must not hold the write lock.
        req.moderator_verified = await moderator_proven(ctx.store, req, ctx.dkim_dns)
        async with ctx.store.transaction() as db:
            reason = automatic_reason(req.msg, item.mail_from, ctx.config.lists)
            if reason is not None:
                event("ignored", reason="automatic", detail=reason, inbox=item.id,
                      msgid=item.message_id, role=item.role)
                outcome = f"ignored automatic mail: {reason}"
            elif req.sender is None:
                outcome = await _unusable_sender(db, req)
            else:
                req.language = guess_language(req)
                outcome = await action(db, req)
            await ctx.store.finish_in(db, item.id, outcome)
        ctx.wake_sender()
        if after is not None:
            await after(ctx)
        return outcome

    return handle


async def _unusable_sender(db: aiosqlite.Connection, req: Request) -> str:
    fallback = normalise_address(req.item.mail_from)
    if fallback is None:
        event("ignored", reason="no usable sender address", inbox=req.item.id)
        return "ignored: neither From nor envelope sender is a usable address"
    await reply(db, req, "invalid_address", to=fallback)  # never her From back to her
    return "invalid From address: explained to the envelope sender"


async def request_commands(db: aiosqlite.Connection, req: Request,
                           web: WebConfig | None = None) -> str:
    """Mail to ``L-request@D``: the first actionable command wins (``web``: for the
    settings link, which names the web face's address)."""
    commands = parse_commands(req.msg, ParseContext.REQUEST)
    colleague = read_request(req.msg, req.sender or "")
    if colleague.ask is Ask.COLLEAGUE and all(
            c.verb in (Verb.SUBSCRIBE, Verb.UNKNOWN) for c in commands):
        return await ask_for_colleague(db, req, colleague.address)  # not the asker herself
    for command in commands:
        verb = command.verb
        if verb is Verb.SUBSCRIBE:
            return await subscribe(db, req)
        if verb is Verb.UNSUBSCRIBE:
            return await unsubscribe(db, req)
        if verb is Verb.HELP:
            await reply(db, req, "help")
            return "help sent"
        if verb is Verb.WHO:
            return await who(db, req)
        if verb in (Verb.INVITE, Verb.REMOVE):
            return await moderator_change(db, req, command)
        if verb in (Verb.NOMAIL, Verb.MAIL):
            return await set_delivery(db, req, paused=verb is Verb.NOMAIL)
        if verb is Verb.SETTINGS:
            return await settings_link(db, req, web)
        if verb in (Verb.INDEX, Verb.GET, Verb.SEARCH):
            return await archive_command(db, req, command)
        if verb in (Verb.CONFIRM, Verb.APPROVE):
            # Wherever the token stands (a "confirm TOKEN" line, the Subject), the
            # body's answer decides, read exactly as a reply to -confirm+TOKEN.
            token = command.argument or find_token(subject(req.msg))
            if token:
                return await redeem(db, req, token)
    # Her lines are not quoted back: the envelope sender may be a forged third party.
    await reply(db, req, "unknown_command")
    return "no command understood; help sent"


async def confirm_reply(db: aiosqlite.Connection, req: Request) -> str:
    """Mail to ``L-confirm+TOKEN@D``: a reply to one of our notices."""
    return await redeem(db, req, req.item.extension)


def build_handlers(ctx: Context) -> dict[str, Handler]:
    return {
        "request": command_handler(ctx, partial(request_commands, web=ctx.config.web),
                                   after=publish_approved),
        "join": command_handler(ctx, subscribe),
        "leave": command_handler(ctx, unsubscribe),
        "confirm": command_handler(ctx, confirm_reply, after=publish_approved),
    }
