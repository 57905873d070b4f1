"""The table of inbox handlers: which function handles which address role.

The processor knows nothing about lists; it looks a row's role up here.
A plain table, as in Mailman's builtin chain, beats a registry while the
set is small and known.
"""

from __future__ import annotations

from listserv.context import Context
from listserv.inbox.processor import Handler, Parker
from listserv.intake.routing import Role
from listserv.roles import bounce_mail, mailcommands, owner, posting


def build_handlers(ctx: Context) -> dict[Role, Handler]:
    """Roles without an entry are recorded only (see ``processor.record_only``)."""
    commands = mailcommands.build_handlers(ctx)
    return {
        Role.REQUEST: commands["request"],
        Role.JOIN: commands["join"],
        Role.LEAVE: commands["leave"],
        Role.CONFIRM: commands["confirm"],
        Role.POST: posting.build_handler(ctx),
        Role.OWNER: owner.build_handler(ctx),
        Role.BOUNCES: bounce_mail.make_bounce_handler(ctx.config, ctx.store, ctx.clock),
    }


def build_parkers(ctx: Context) -> dict[Role, Parker]:
    """What a role does with a mail the worker could not read (others: the row only)."""
    return {Role.POST: posting.build_parker(ctx)}
