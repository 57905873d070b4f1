"""The web face, served by the daemon itself (aiohttp), only with ``[web]``.

``server``: the application, RFC 8058 one-click unsubscribe and ``/healthz``;
``app`` adds the pages (docs/web.md): ``join`` (the join form, the login by
mailed link), ``me`` (a member's settings), ``desk`` and ``deciding`` (the
coordinator's desk), ``reading`` (the members' archive, read through
``archive.browse``), sharing ``site`` (templates, headers, CSRF, cookies),
``sessions`` and ``acting`` (a web action as a ``Request``). ``forms`` is
the pure part: what a form accepts, rate limits, paging.

Core: forms
Shell: server, app, site, sessions, acting, join, me, desk, deciding, reading
May import: archive, clock, commands, config, context, delivery, inbox, log, mail, membership,
            moderation, ops, outbox, roles, store, texts
"""
