"""Moderation: may this post pass, held posts, the moderator's decision, publishing.

``policy`` is the ordered rule table (loop, own address, robot, Bcc,
DKIM-verified moderator, the list's post policy) that turns the facts of a
post into a ``Decision``; ``notices`` builds the notice that carries a held
post (and the owner forward); ``copies`` builds a list copy (run in the
worker process). ``posts`` gathers the facts, holds, applies a moderator's
decision and runs the reminder and expiry jobs; ``publish`` turns approved
posts into queued list copies, parking one that cannot be built.

Core: policy, notices, copies
Shell: posts, publish
May import: archive, clock, commands, config, context, delivery, inbox, log, mail, membership,
            outbox, texts
"""
