"""Moderation: may this post pass, held posts, the moderator's decision, publishing.

``policy`` is the ordered rule table (loop, own address, robot, Bcc,
DKIM-verified moderator, the list's post policy) that turns the facts of a
post into a ``Decision``; ``notices`` builds the notice that carries a held
post (and the owner forward). ``posts`` gathers the facts, holds, applies a
moderator's decision, publishes approved posts and runs the reminder and
expiry jobs.

Core: policy, notices, copies
Shell: posts
May import: clock, commands, config, context, delivery, inbox, log, mail, membership, outbox, texts
"""
