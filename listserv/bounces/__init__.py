"""Bounces: who bounced, and what it costs the member.

``analyse`` is a pure function from a bounce's bytes to the failed
addresses (VERP first, then RFC 3464 in ``dsn``, flufl.bounce, then the
prose of odd bounces in ``prose``; ``mime`` is the tolerant parsing they
share). ``score`` counts a permanent failure against a member, from a
bounce mail (``roles.bounce_mail``) or a 5xx at delivery, and disables her
at the threshold; ``upkeep`` lets scores decay and tells people when
delivery stops.

Core: analyse, dsn, mime, prose, verp
Shell: score, upkeep
May import: clock, config, context, log, outbox, texts
"""
