"""Operations: timed jobs, retention, backups, and ``listserv status``.

``scheduler`` holds every timed job on APScheduler, each working from
database state so a missed or doubled run is harmless. ``retention``
deletes raw mail after ``retention_days`` (DSGVO), ``backup`` makes online
backups, ``health`` gathers what ``listserv status`` shows and ``report``
decides what of it needs a person (and what ``status --json`` and
``GET /healthz`` answer); ``preflight`` is what ``serve`` checks before it
touches anything (data_dir, the data_dir lock, free ports).

Core: report
Shell: scheduler, retention, backup, health, preflight
May import: archive, bounces, clock, commands, config, context, errors, log, moderation,
            outbox, store
"""
