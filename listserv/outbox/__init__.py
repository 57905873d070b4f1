"""The outbox: our own mail, queued inside the transaction that decided it.

``queue`` writes an ``outgoing`` row and one ``deliveries`` row per
recipient (for a post, one INSERT…SELECT over the members); ``respond``
queues answers to a writer (capped per address and day) and notices to
the moderators. Queueing is all it does; the sender in ``delivery`` takes
it from there.

Core: (none)
Shell: queue, respond
May import: clock, config, log, texts
"""
