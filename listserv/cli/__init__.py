"""The ``listserv`` command line (DESIGN §2).

``main`` parses the command line and runs ``serve``, ``init``, ``check``,
``status`` and ``backup``; ``admin`` is ``members``, ``held`` and
``privacy``; ``archiving`` is ``archive import``; ``storing`` is ``store
migrate-to``. Every fault an operator can cause is one line and a non-zero
exit status, never a traceback.

Core: (none)
Shell: main, admin, archiving, storing
May import: archive, clock, config, daemon, delivery, errors, intake, listserv, log, mail,
            membership, moderation, ops, store, texts
"""
