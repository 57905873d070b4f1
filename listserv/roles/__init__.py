"""What mail to each of a list's addresses does (DESIGN §4), one handler per role.

``table`` maps an address role to its handler: the list address itself
(``posting``: a join/leave request written as a post, or a post),
``-request``, ``-join``, ``-leave`` and ``-confirm+TOKEN``
(``mailcommands``; a token is redeemed in ``confirm``), ``-owner``
(``owner``). Bounces are handled in ``bounces.score``. These handlers
read the request with ``commands`` and act through ``membership`` and
``moderation``; nothing below imports them.

Core: (none)
Shell: table, posting, mailcommands, confirm, owner
May import: bounces, clock, commands, context, inbox, intake, log, mail,
            membership, moderation, outbox, store
"""
