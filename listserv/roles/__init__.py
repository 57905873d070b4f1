"""What mail to each of a list's addresses does (DESIGN §4), one handler per role.

``table`` maps an address role to its handler: the list address itself
(``posting``: a join/leave request written as a post, or a post),
``-request``, ``-join``, ``-leave`` and ``-confirm+TOKEN``
(``mailcommands``; a token is redeemed in ``confirm``; the archive
commands ``index``/``get``/``search`` are answered by ``archive_mail``), ``-owner``
(``owner``) and ``-bounces`` (``bounce_mail``). These handlers read the
request with ``commands`` and act through ``membership``, ``moderation``
and ``bounces``; nothing below imports them.

Core: (none)
Shell: table, posting, mailcommands, confirm, owner, bounce_mail, archive_mail
May import: archive, bounces, clock, commands, config, context, inbox, intake, log, mail,
            membership, moderation, outbox, store, texts
"""
