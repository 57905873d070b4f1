"""listserv: a mailing-list manager daemon.

A mail's path through the package, one sub-package per step. Imports go
one way only: no package imports one that imports it back (the order is
in docs/architecture.md; tests/test_layout.py keeps it so).

    intake/      SMTP/LMTP server; RCPT routing; commit, then 250
    store/       the database: rows, migrations, the one write connection
    inbox/       take committed mail in order; the Request a handler gets
    roles/       what mail to each list address does (post, -request, -confirm, -owner …)
    commands/    what a person wrote: commands and replies; tokens
    membership/  joining and leaving, member rows, consent log
    moderation/  may this post pass; held posts; publishing
    bounces/     who bounced; bounce scores
    outbox/      our own mail queued: answers, notices, posts
    delivery/    the list copy, DKIM signing, the sender, transports
    ops/         timed jobs, retention, backups, ``listserv status``
    web/         the HTTP face (one-click unsubscribe)
    cli/         the ``listserv`` command
    mail/, texts/  reading a mail (and its sender's DNS); writing ours

The modules left at the top are the ones every step shares.

Core: config, errors, clock
Shell: log, context, daemon, __main__
May import: (none)
"""

__version__ = "0.1.0"
