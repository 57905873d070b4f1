"""The inbox: committed mail, taken in order, and what a handler is given.

``processor`` claims the oldest due inbox row, hands it to the handler of
its role (the table is in ``roles``) and records the outcome, retrying
with backoff and parking a poison message. ``request`` turns a row into a
``Request`` (parsed once, sender validated); ``automatic`` says whether a
mail comes from a robot, which then never confirms, approves or gets an
answer. ``worker`` is the time- and memory-limited process in which
``examine`` reads each mail once before its handler (a mail it cannot
finish is parked); ``proof`` asks ``mail.dkim_proof`` about a
moderator's mail and remembers each proof once (``store.replay``).

Core: request, automatic, examine
Shell: processor, proof, worker
May import: config, intake, log, mail, store
"""
