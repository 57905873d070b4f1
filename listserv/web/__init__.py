"""The web face, served by the daemon itself (aiohttp), only with ``[web]``.

Today: RFC 8058 one-click unsubscribe (``server``). The join form, member
settings, the coordinator's desk and the archive go here.

Core: (none)
Shell: server
May import: commands, config, context, delivery, log, mail, membership, ops, outbox, store,
            texts
"""
